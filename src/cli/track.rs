//! `vosbench track`: segment one object through a folder of JPEG frames from a point or box
//! prompt, and write one PNG mask per frame in the SA-V layout.

use crate::cli::common::{converted_path, parse_device, write_overlay, write_png_atomic};
use crate::config::Registry;
use crate::error::{Error, Result};
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::{FrameResult, Prompt, Session, SessionOptions};
use candle_core::DType;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model variant or alias (e.g. sam2.1_hiera_tiny, sam2_base, edgetam), or a variant JSON file.
    #[arg(long)]
    pub model: String,
    /// Folder of JPEG frames named by frame number (00000.jpg, 00001.jpg, ...).
    #[arg(long)]
    pub frames: PathBuf,
    /// A click X,Y in video pixels, optionally with a label (1 positive, 0 negative). Repeatable.
    #[arg(long = "point", value_name = "X,Y[,LABEL]")]
    pub points: Vec<String>,
    /// A box X0,Y0,X1,Y1 in video pixels.
    #[arg(long = "box", value_name = "X0,Y0,X1,Y1")]
    pub bbox: Option<String>,
    /// Frame the prompt is given on.
    #[arg(long, default_value_t = 0)]
    pub prompt_frame: usize,
    /// Object id written in the output path (OUT/<video>/<obj:03>/).
    #[arg(long, default_value_t = 1)]
    pub obj_id: u32,
    /// Output root.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Folder with converted checkpoints (<variant>.safetensors).
    #[arg(long, default_value = "weights")]
    pub weights_dir: PathBuf,
    /// Use this converted checkpoint instead of the one in --weights-dir.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Also write overlay images (frame with the mask tinted) under OUT/<video>/overlay/.
    #[arg(long)]
    pub overlay: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_floats(s: &str, what: &str) -> Result<Vec<f32>> {
    s.split(',')
        .map(|v| {
            v.trim().parse::<f32>().map_err(|_| {
                Error::Input(format!(
                    "bad {what} '{s}': expected numbers separated by commas"
                ))
            })
        })
        .collect()
}

/// Turn the --point / --box strings into a prompt.
pub fn parse_prompt(points: &[String], bbox: Option<&str>) -> Result<Prompt> {
    let mut prompt = Prompt::default();
    for p in points {
        let v = parse_floats(p, "point")?;
        let label = match v.len() {
            2 => 1,
            3 if v[2] == 0.0 || v[2] == 1.0 => v[2] as i32,
            3 => {
                return Err(Error::Input(format!(
                    "bad point '{p}': label must be 0 or 1"
                )))
            }
            _ => {
                return Err(Error::Input(format!(
                    "bad point '{p}': expected X,Y or X,Y,LABEL"
                )))
            }
        };
        prompt.points.push((v[0], v[1], label));
    }
    if let Some(b) = bbox {
        let v = parse_floats(b, "box")?;
        if v.len() != 4 {
            return Err(Error::Input(format!("bad box '{b}': expected X0,Y0,X1,Y1")));
        }
        prompt.bbox = Some([v[0], v[1], v[2], v[3]]);
    }
    if prompt.points.is_empty() && prompt.bbox.is_none() {
        return Err(Error::Input(
            "give a prompt: --point X,Y[,LABEL] (repeatable) or --box X0,Y0,X1,Y1".into(),
        ));
    }
    Ok(prompt)
}

fn write_mask(path: &Path, res: &FrameResult, obj: usize) -> Result<Vec<bool>> {
    let m = res.video_res_masks.get(obj)?.squeeze(0)?;
    let (h, w) = m.dims2()?;
    let fg = m
        .gt(0f32)?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    let px: Vec<u8> = fg.iter().map(|&v| if v > 0 { 255 } else { 0 }).collect();
    let img = image::GrayImage::from_raw(w as u32, h as u32, px)
        .ok_or_else(|| Error::Other("mask buffer has the wrong size".into()))?;
    write_png_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
    })?;
    Ok(fg.into_iter().map(|v| v > 0).collect())
}

pub fn run(args: Args) -> Result<()> {
    let prompt = parse_prompt(&args.points, args.bbox.as_deref())?;
    let reg = Registry::builtin()?;
    let cfg = reg.resolve(&args.model)?;
    let device = parse_device(&args.device)?;
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(|| converted_path(&args.weights_dir, &cfg));
    if !weights.exists() {
        return Err(Error::Input(format!(
            "missing weights {} (run `vosbench fetch {}` or `vosbench convert`)",
            weights.display(),
            cfg.name
        )));
    }
    let vb = crate::weights::load_var_builder(&weights, &cfg, DType::F32, &device)?;
    let model = Sam2Base::new(&cfg, vb)?;
    let mut session = Session::open(&model, &args.frames, &device, SessionOptions::default())?;
    let n = session.num_frames();
    if args.prompt_frame >= n {
        return Err(Error::Input(format!(
            "--prompt-frame {} is outside the video ({n} frames)",
            args.prompt_frame
        )));
    }
    let video = args
        .frames
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let mask_dir = args.out.join(&video).join(format!("{:03}", args.obj_id));
    std::fs::create_dir_all(&mask_dir).map_err(|e| Error::io(&mask_dir, e))?;
    let overlay_dir = args.out.join(&video).join("overlay");
    if args.overlay {
        std::fs::create_dir_all(&overlay_dir).map_err(|e| Error::io(&overlay_dir, e))?;
    }
    session.add_prompt(args.prompt_frame, args.obj_id, &prompt)?;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(n as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} frames {per_sec} eta {eta}",
        )
        .map_err(|e| Error::Other(e.to_string()))?,
    );
    bar.set_message("tracking");
    let frame_paths: Vec<Option<PathBuf>> = (0..n)
        .map(|i| session.frame_path(i).map(Path::to_path_buf))
        .collect();
    let mut written = vec![false; n];
    let mut handle = |res: FrameResult| -> Result<()> {
        let f = res.frame_idx;
        if written[f] {
            return Ok(());
        }
        written[f] = true;
        let fg = write_mask(&mask_dir.join(format!("{f:05}.png")), &res, 0)?;
        if let (true, Some(p)) = (args.overlay, &frame_paths[f]) {
            write_overlay(&overlay_dir.join(format!("{f:05}.png")), p, &fg)?;
        }
        bar.inc(1);
        Ok(())
    };
    session.propagate(Some(args.prompt_frame), None, false, &mut handle)?;
    if args.prompt_frame > 0 {
        // backward from the prompt frame, as the official predictor does with reverse=True
        session.propagate(Some(args.prompt_frame), None, true, &mut handle)?;
    }
    bar.finish_and_clear();
    if !args.quiet {
        eprintln!("wrote {n} masks to {}", mask_dir.display());
    }
    Ok(())
}
