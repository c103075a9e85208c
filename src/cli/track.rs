//! `vosbench track`: segment one object through a folder of JPEG frames from a point or box
//! prompt, and write one PNG mask per frame in the SA-V layout. Several objects in one session
//! (`--prompts FILE`, `--object SPEC`) are [`crate::cli::track_objects`]. With `--timing FILE` it also
//! records how fast (per-frame latency, steady FPS, time from process start to the first mask)
//! and with how much device memory; `tests/gpu/speed_vs_torch.sh` compares that with the official
//! PyTorch predictors (docs/performance.md).

use crate::cli::common::parse_device;
use crate::config::Registry;
use crate::config::{FenceSet, FenceSpec, GraphMode, Precision};
use crate::cuda::memory::DeviceMemory;
use crate::cuda::tuning::{ConvOptions, ConvTuner};
use crate::data::overlay::{write_overlay, write_png_atomic};
use crate::error::{Error, Result};
use crate::exec::EnvSwitches;
use crate::host::procfs::{process_age_s, CLOCK_TICKS_PER_SECOND};
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::{FrameResult, Prompt, Session, SessionOptions};
use crate::weights::hub::converted_path;
use candle_core::DType;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model variant or alias (e.g. sam2.1_hiera_tiny, sam2_base, edgetam), or a variant JSON file.
    #[arg(long)]
    pub model: String,
    /// Folder of JPEG frames named by frame number (00000.jpg, 00001.jpg, ...).
    #[arg(long)]
    pub frames: PathBuf,
    /// Several objects in one session from a prompts file (format vosbench-prompts-1, see
    /// README): per object id, prompt steps with a frame and clicks, a box or a mask PNG.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["points", "bbox", "prompt_frame", "obj_id", "timing", "no_masks", "overlay"])]
    pub prompts: Option<PathBuf>,
    /// The run of a prompts file that holds several named runs.
    #[arg(long, value_name = "NAME", requires = "prompts")]
    pub prompts_run: Option<String>,
    /// An object's prompt, repeatable (several objects in one session; several parts per
    /// object): ID:point=X,Y[,LABEL], ID:box=X0,Y0,X1,Y1 or ID:mask=PATH (a PNG of the video's
    /// size, foreground > 0), each optionally followed by @frame=F (default 0), e.g.
    /// `--object 2:mask=a.png --object 3:point=10,20@frame=5`. Objects join at their first
    /// prompt frame; masks go to OUT/<video>/<obj:03>/<frame name>.png.
    #[arg(long = "object", value_name = "SPEC", conflicts_with_all = ["points", "bbox", "prompt_frame", "obj_id", "timing", "no_masks", "overlay"])]
    pub objects: Vec<String>,
    /// With --prompts / --object: write one indexed PNG per frame with the DAVIS palette
    /// (OUT/<video>/<frame name>.png, values = object ids) instead of one PNG per object.
    #[arg(long)]
    pub davis_palette: bool,
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
    /// Output root (not needed with --no-masks).
    #[arg(long, required_unless_present = "no_masks")]
    pub out: Option<PathBuf>,
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
    /// Model dtype: f32, f16 or bf16 (bf16 needs CUDA: candle's CPU matmul has no bf16 kernel).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Allow TF32 tensor-core math for f32 convolutions and matmuls (CUDA; PyTorch's default
    /// for convolutions). Off by default: pure f32.
    #[arg(long)]
    pub tf32: bool,
    /// Upper bound of the cuDNN convolution workspace, in MiB (CUDA).
    #[arg(long, default_value_t = 256)]
    pub workspace_mb: usize,
    /// Where each frame waits for the device so the memory pool can reuse what the frame freed
    /// (CUDA): auto (after memory attention in f32, nowhere in f16/bf16), off, all, or a comma
    /// list of trunk, neck, memcond, heads, block, layer. Trades a little speed for a lower
    /// reserved peak (docs/performance.md, "Peak memory").
    #[arg(long, default_value = "auto")]
    pub memory_fence: String,
    /// Replay the image encoder (trunk and neck) from the second frame it encodes on, and a
    /// tracked frame's memory attention, heads and memory encoder once the memory bank is full,
    /// as CUDA graphs (CUDA): a few launches instead of hundreds of kernels per frame, same
    /// kernels, same results. auto (on in f16/bf16, off in f32, where they cost memory), on or
    /// off (docs/performance.md, "CUDA graphs").
    #[arg(long, default_value = "auto")]
    pub cuda_graph: String,
    /// Time the cuDNN algorithms of every convolution shape instead of trusting the heuristic
    /// (CUDA; the search runs on the first frame and counts in its latency).
    #[arg(long)]
    pub enable_cudnn_tuning: bool,
    /// Write timings to this JSON file: per-frame latency, steady FPS, percentiles, time from
    /// process start to the first mask, model load time, device memory peaks (docs/performance.md).
    #[arg(long, value_name = "FILE")]
    pub timing: Option<PathBuf>,
    /// Propagated frames left out of the steady FPS and the percentiles of --timing.
    #[arg(long, default_value_t = 5)]
    pub warmup_frames: usize,
    /// Do not write mask PNGs (speed runs); masks are still thresholded and copied to the host.
    #[arg(long, conflicts_with = "overlay")]
    pub no_masks: bool,
}

impl Args {
    /// Whether several objects are asked for (`--prompts` or `--object`).
    pub fn several_objects(&self) -> bool {
        self.prompts.is_some() || !self.objects.is_empty()
    }
}

/// [`process_age_s`] in milliseconds, rounded to 0.1 ms (the value is good to 10 ms).
fn process_age_ms() -> Option<f64> {
    process_age_s().map(|s| crate::bench::results::round(s * 1e3, 1))
}

/// What `--timing` writes (docs/performance.md, "Speed against PyTorch: how to run"). Times are
/// in milliseconds, memory in bytes; device figures are `null` on CPU.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    pub engine: &'static str,
    pub model: String,
    pub precision: Precision,
    pub tf32: bool,
    pub workspace_mb: usize,
    /// The `--memory-fence` points in force (`off` for none).
    pub memory_fences: FenceSet,
    /// The CUDA graphs at the end, `trunk <state>; step <state>`, each state `off`, `eager`,
    /// `captured` or `failed: <why>`.
    pub cuda_graph: String,
    pub cudnn_tuning: bool,
    pub device: String,
    pub device_name: String,
    pub video: String,
    pub video_width: usize,
    pub video_height: usize,
    pub prompt_frame: usize,
    /// Distinct frames with a mask (the prompt frame included).
    pub frames: usize,
    pub warmup_frames: usize,
    /// One entry per tracked frame after the prompt frame, in the order they were produced: time
    /// from the previous frame's mask on the host to this frame's (device synchronised).
    pub latencies_ms: Vec<f64>,
    /// Over all `latencies_ms`.
    pub fps: Option<f64>,
    /// Over `latencies_ms` without the first `warmup_frames`.
    pub fps_steady: Option<f64>,
    /// Percentiles of the steady latencies (numpy's linear interpolation).
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_mean_ms: Option<f64>,
    /// Process age when `track` began (exec, dynamic loading, argument parsing).
    pub run_start_ms: Option<f64>,
    /// Process age when the prompt frame's mask was on the host.
    pub start_to_first_mask_ms: Option<f64>,
    /// Weights read and the model built (device synchronised).
    pub model_load_ms: f64,
    /// Frame reader opened (frames are decoded lazily).
    pub session_open_ms: f64,
    /// The prompt call, up to its mask on the host.
    pub first_mask_ms: f64,
    /// All propagation calls together.
    pub propagate_ms: f64,
    /// Where the device figures come from (`memory_pool` or `device_info`).
    pub device_memory_accounting: Option<crate::cuda::memory::Accounting>,
    /// Peak bytes of live tensor allocations over the whole run, weights included.
    pub peak_device_alloc_bytes: Option<u64>,
    /// Peak bytes the allocator held from the driver over the whole run.
    pub peak_device_reserved_bytes: Option<u64>,
    /// Live allocations right after the model was built (about the weights).
    pub device_alloc_after_load_bytes: Option<u64>,
    /// `total - free` of the whole device at the end (CUDA context and libraries included).
    pub device_total_used_end_bytes: Option<u64>,
    /// The memory pool after each frame's mask was on the host, in the order the frames were
    /// produced (prompt frame first): live and reserved bytes and the high-water marks so far.
    /// Empty on CPU.
    pub device_pool_per_frame: Vec<crate::cuda::memory::PoolSample>,
    pub clock_ticks_per_second: f64,
    pub masks_written: bool,
    /// Positive-pixel fraction of the masks (min, mean, max over the tracked frames): a sanity
    /// check that the tracked masks are neither empty nor full.
    pub mask_fraction: Option<[f64; 3]>,
}

impl Timing {
    /// Fill the derived figures from `latencies_ms`.
    pub fn summarize(&mut self) {
        use crate::bench::results::{percentile, round};
        let lat = &self.latencies_ms;
        if lat.is_empty() {
            return;
        }
        let total: f64 = lat.iter().sum();
        self.fps = Some(round(lat.len() as f64 * 1e3 / total, 3));
        let steady = &lat[self.warmup_frames.min(lat.len())..];
        if steady.is_empty() {
            return;
        }
        let st: f64 = steady.iter().sum();
        self.fps_steady = Some(round(steady.len() as f64 * 1e3 / st, 3));
        self.latency_mean_ms = Some(round(st / steady.len() as f64, 3));
        let mut sorted = steady.to_vec();
        sorted.sort_by(f64::total_cmp);
        self.latency_p50_ms = percentile(&sorted, 50.0).map(|v| round(v, 3));
        self.latency_p90_ms = percentile(&sorted, 90.0).map(|v| round(v, 3));
        self.latency_p99_ms = percentile(&sorted, 99.0).map(|v| round(v, 3));
    }
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

/// The foreground of object `obj` on the host (row-major, video size): `(fg, width, height)`.
fn mask_on_host(res: &FrameResult, obj: usize) -> Result<(Vec<bool>, usize, usize)> {
    let m = res
        .video_res_masks
        .get(obj)?
        .squeeze(0)?
        .to_dtype(DType::F32)?;
    let (h, w) = m.dims2()?;
    let fg = m
        .gt(0f32)?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    Ok((fg.into_iter().map(|v| v > 0).collect(), w, h))
}

fn write_mask(path: &Path, fg: &[bool], w: usize, h: usize) -> Result<()> {
    let px: Vec<u8> = fg.iter().map(|&v| if v { 255 } else { 0 }).collect();
    let img = image::GrayImage::from_raw(w as u32, h as u32, px)
        .ok_or_else(|| Error::Other("mask buffer has the wrong size".into()))?;
    write_png_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
    })
}

/// The PNG name of frame `idx`'s mask: the source frame's own name (`00005.jpg` gives
/// `00005.png`), so masks of a video whose frames are numbered with gaps (SA-V's 24 fps frames
/// against 6 fps annotations) match the ground truth in `eval`; the index when the frame has no
/// file.
fn mask_file_name(frame: Option<&Path>, idx: usize) -> String {
    match frame.and_then(|p| p.file_stem()) {
        Some(stem) => format!("{}.png", stem.to_string_lossy()),
        None => format!("{idx:05}.png"),
    }
}

fn ms(d: std::time::Duration) -> f64 {
    crate::bench::results::round(d.as_secs_f64() * 1e3, 3)
}

/// `track` of one object (the CLI sends `--prompts` / `--object` runs to
/// [`crate::cli::track_objects::run`]).
pub fn run(args: Args, switches: &EnvSwitches) -> Result<()> {
    if args.davis_palette {
        return Err(Error::Input(
            "--davis-palette needs several objects: give --prompts FILE or --object SPEC".into(),
        ));
    }
    let run_start_ms = process_age_ms();
    let prompt = parse_prompt(&args.points, args.bbox.as_deref())?;
    let reg = Registry::builtin()?;
    let cfg = reg.resolve(&args.model)?;
    let device = parse_device(&args.device)?;
    let precision = args
        .precision
        .parse::<Precision>()?
        .check_device(device.is_cpu())?;
    let dtype = precision.dtype();
    let memory_fences = args.memory_fence.parse::<FenceSpec>()?.resolve(dtype);
    let cuda_graph = args.cuda_graph.parse::<GraphMode>()?.resolve(dtype);
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
    let conv = ConvOptions::new(args.workspace_mb, args.tf32, args.enable_cudnn_tuning);
    crate::cuda::tuning::set_candle_matmul_tf32(conv.tf32);
    let model_opts = ModelOptions::new(
        std::sync::Arc::new(ConvTuner::new(conv)),
        switches.fused_attention,
    );
    // Before any allocation: raises the pool's release threshold, and its peaks then cover the
    // whole run, weights included.
    let mem = DeviceMemory::for_device(&device);
    let t_load = Instant::now();
    let vb = crate::weights::load_var_builder(&weights, &cfg, dtype, &device)?;
    let model = Sam2Base::new_with(&cfg, &model_opts, vb)?;
    device.synchronize()?;
    let model_load_ms = ms(t_load.elapsed());
    let alloc_after_load = mem.as_ref().map(|m| m.used_bytes()).transpose()?;
    let t_open = Instant::now();
    let session_opts = SessionOptions {
        memory_fences: Some(memory_fences),
        cuda_graph,
        profiler: switches.profiler.clone(),
        ..SessionOptions::default()
    };
    let mut session = Session::open(&model, &args.frames, &device, session_opts)?;
    let session_open_ms = ms(t_open.elapsed());
    let n = session.num_frames();
    let (video_height, video_width) = session.video_size();
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
    let write_masks = !args.no_masks;
    let out_root = args.out.clone().unwrap_or_default();
    let mask_dir = out_root.join(&video).join(format!("{:03}", args.obj_id));
    if write_masks {
        std::fs::create_dir_all(&mask_dir).map_err(|e| Error::io(&mask_dir, e))?;
    }
    let overlay_dir = out_root.join(&video).join("overlay");
    if args.overlay {
        std::fs::create_dir_all(&overlay_dir).map_err(|e| Error::io(&overlay_dir, e))?;
    }
    let t_prompt = Instant::now();
    let first = session.add_prompt(args.prompt_frame, args.obj_id, &prompt)?;
    device.synchronize()?;
    mask_on_host(&first, 0)?;
    let first_mask_ms = ms(t_prompt.elapsed());
    let start_to_first_mask_ms = process_age_ms();
    drop(first);
    let pool_memory = mem
        .as_ref()
        .filter(|m| m.accounting() == crate::cuda::memory::Accounting::MemoryPool);
    let mut pool_samples = Vec::new();
    if let Some(m) = pool_memory {
        pool_samples.push(m.sample()?);
    }
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
    let mut latencies: Vec<f64> = Vec::new();
    let mut fractions: Vec<f64> = Vec::new();
    // End of the previous frame's handling; None before the first frame of each propagation
    // (the prompt frame, whose mask is already known), so it gets no latency.
    let last: std::cell::Cell<Option<Instant>> = std::cell::Cell::new(None);
    let mut handle = |res: FrameResult| -> Result<()> {
        device.synchronize()?;
        let (fg, w, h) = mask_on_host(&res, 0)?;
        let now = Instant::now();
        if let Some(prev) = last.get() {
            latencies.push(ms(now.duration_since(prev)));
        }
        let f = res.frame_idx;
        if !written[f] {
            written[f] = true;
            let on = fg.iter().filter(|&&v| v).count();
            fractions.push(on as f64 / fg.len().max(1) as f64);
            let name = mask_file_name(frame_paths[f].as_deref(), f);
            if write_masks {
                write_mask(&mask_dir.join(&name), &fg, w, h)?;
            }
            if let (true, Some(p)) = (args.overlay, &frame_paths[f]) {
                write_overlay(&overlay_dir.join(&name), p, &fg)?;
            }
            bar.inc(1);
        }
        if let Some(m) = pool_memory {
            pool_samples.push(m.sample()?);
        }
        // Writing PNGs is not part of the next frame's latency.
        last.set(Some(Instant::now()));
        Ok(())
    };
    let t_prop = Instant::now();
    session.propagate(Some(args.prompt_frame), None, false, &mut handle)?;
    if args.prompt_frame > 0 {
        // backward from the prompt frame, as the official predictor does with reverse=True
        last.set(None);
        session.propagate(Some(args.prompt_frame), None, true, &mut handle)?;
    }
    let propagate_ms = ms(t_prop.elapsed());
    bar.finish_and_clear();
    let frames = written.iter().filter(|&&w| w).count();
    if !args.quiet {
        if write_masks {
            eprintln!("wrote {frames} masks to {}", mask_dir.display());
        } else {
            eprintln!("tracked {frames} frames (no masks written)");
        }
    }
    if let Some(path) = &args.timing {
        let peak = |f: fn(&DeviceMemory) -> Result<u64>| mem.as_ref().map(f).transpose();
        let report = crate::cuda::probe::probe(&device, &crate::host::HostRoot::system())?;
        let mut t = Timing {
            engine: "vosbench",
            model: cfg.name.clone(),
            precision,
            tf32: args.tf32,
            workspace_mb: args.workspace_mb,
            memory_fences,
            cuda_graph: format!(
                "trunk {}; step {}",
                model.image_encoder.trunk_graph_status(),
                session.step_graph_status()
            ),
            cudnn_tuning: args.enable_cudnn_tuning,
            device: args.device.clone(),
            device_name: report.name.clone().unwrap_or(report.kind),
            video,
            video_width,
            video_height,
            prompt_frame: args.prompt_frame,
            frames,
            warmup_frames: args.warmup_frames,
            latencies_ms: latencies,
            fps: None,
            fps_steady: None,
            latency_p50_ms: None,
            latency_p90_ms: None,
            latency_p99_ms: None,
            latency_mean_ms: None,
            run_start_ms,
            start_to_first_mask_ms,
            model_load_ms,
            session_open_ms,
            first_mask_ms,
            propagate_ms,
            device_memory_accounting: mem.as_ref().map(DeviceMemory::accounting),
            peak_device_alloc_bytes: peak(DeviceMemory::peak_used_bytes)?,
            peak_device_reserved_bytes: peak(DeviceMemory::peak_reserved_bytes)?,
            device_alloc_after_load_bytes: alloc_after_load,
            device_total_used_end_bytes: peak(DeviceMemory::device_used_bytes)?,
            device_pool_per_frame: pool_samples,
            clock_ticks_per_second: CLOCK_TICKS_PER_SECOND,
            masks_written: write_masks,
            mask_fraction: (!fractions.is_empty()).then(|| {
                let r = |v: f64| crate::bench::results::round(v, 4);
                let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
                let min = fractions.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = fractions.iter().cloned().fold(0.0, f64::max);
                [r(min), r(mean), r(max)]
            }),
        };
        t.summarize();
        let text = serde_json::to_string_pretty(&t)
            .map_err(|e| Error::Other(format!("timing JSON: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_skips_warmup_frames() {
        let mut t = Timing {
            engine: "vosbench",
            model: String::new(),
            precision: Precision::F32,
            tf32: false,
            workspace_mb: 256,
            memory_fences: FenceSet::NONE,
            cuda_graph: "off".into(),
            cudnn_tuning: false,
            device: "cpu".into(),
            device_name: String::new(),
            video: String::new(),
            video_width: 0,
            video_height: 0,
            prompt_frame: 0,
            frames: 5,
            warmup_frames: 2,
            latencies_ms: vec![100.0, 50.0, 10.0, 10.0],
            fps: None,
            fps_steady: None,
            latency_p50_ms: None,
            latency_p90_ms: None,
            latency_p99_ms: None,
            latency_mean_ms: None,
            run_start_ms: None,
            start_to_first_mask_ms: None,
            model_load_ms: 0.0,
            session_open_ms: 0.0,
            first_mask_ms: 0.0,
            propagate_ms: 0.0,
            device_memory_accounting: None,
            peak_device_alloc_bytes: None,
            peak_device_reserved_bytes: None,
            device_alloc_after_load_bytes: None,
            device_total_used_end_bytes: None,
            device_pool_per_frame: Vec::new(),
            clock_ticks_per_second: CLOCK_TICKS_PER_SECOND,
            masks_written: false,
            mask_fraction: None,
        };
        t.summarize();
        assert_eq!(t.fps_steady, Some(100.0));
        assert_eq!(t.fps, Some(23.529));
        assert_eq!(t.latency_p50_ms, Some(10.0));
        assert_eq!(t.latency_mean_ms, Some(10.0));
    }
}
