//! `vosbench track` with several objects: prompts from a `vosbench-prompts-1` file
//! (`--prompts`) and/or `--object` specs, all objects in ONE session (one image-encoder pass per
//! frame, each object with its own memory), each object joining at its first prompt frame.
//!
//! `--object` syntax: `ID:point=X,Y[,LABEL]`, `ID:box=X0,Y0,X1,Y1` or `ID:mask=PATH`, each
//! optionally followed by `@frame=F` (default frame 0). An object may be given several times:
//! its clicks and box on one frame form one prompt (the official `add_new_points_or_box`), a mask
//! is its own prompt step; steps apply in the order given.
//!
//! Output (the layouts the official evaluators read):
//! - default, SA-V per object: `OUT/<video>/<obj:03>/<frame name>.png`, one binary PNG (0/255)
//!   per object and frame, every frame of the video (empty where the object has no output: before
//!   its first prompt frame);
//! - `--davis-palette`: `OUT/<video>/<frame name>.png`, one indexed PNG per frame with the DAVIS
//!   palette whose values are object ids. Overlaps are resolved as the official
//!   `tools/vos_inference.py` does for this layout: each pixel goes to the object with the highest
//!   logit, if that logit is > 0.
//!
//! `<frame name>` is the source frame's file stem (e.g. `00042` for `00042.jpg`), not its
//! position, so the outputs line up with the ground truth of splits whose frames are numbered
//! with gaps. Tracking runs forward from the earliest prompt frame, as the official
//! `vos_inference.py` does.

use crate::cli::common::parse_device;
use crate::cli::track::Args;
use crate::config::{FenceSpec, GraphMode, Precision, Registry};
use crate::cuda::tuning::{ConvOptions, ConvTuner};
use crate::data::masks::{write_palette_png, LabelMap};
use crate::data::overlay::write_png_atomic;
use crate::data::prompt_file::{
    check_objects, read_prompts_file, ObjectPrompts, PromptStep, StepKind,
};
use crate::error::{Error, Result};
use crate::exec::EnvSwitches;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::prompts::{apply_step, load_steps};
use crate::tracker::session::{FrameResult, Session, SessionOptions};
use crate::weights::hub::converted_path;
use candle_core::DType;
use std::path::PathBuf;

/// One part of an `--object` spec.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Point(f32, f32, i32),
    Box([f32; 4]),
    Mask(PathBuf),
}

fn bad_spec(spec: &str, why: &str) -> Error {
    Error::Input(format!(
        "bad --object '{spec}': {why} (expected ID:point=X,Y[,LABEL], ID:box=X0,Y0,X1,Y1 or \
         ID:mask=PATH, optionally followed by @frame=F)"
    ))
}

fn numbers(spec: &str, s: &str) -> Result<Vec<f32>> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad_spec(spec, &format!("'{v}' is not a number")))
        })
        .collect()
}

/// Parse one `--object` spec: (object id, frame, part).
fn parse_spec(spec: &str) -> Result<(u32, usize, Part)> {
    let (id, rest) = spec
        .split_once(':')
        .ok_or_else(|| bad_spec(spec, "no ':' after the object id"))?;
    let id: u32 = id
        .trim()
        .parse()
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| bad_spec(spec, &format!("object id '{id}' is not an integer >= 1")))?;
    let (body, frame) = match rest.rsplit_once("@frame=") {
        Some((b, f)) => {
            let f: usize = f
                .trim()
                .parse()
                .map_err(|_| bad_spec(spec, &format!("frame '{f}' is not an integer >= 0")))?;
            (b, f)
        }
        None => (rest, 0),
    };
    let (kind, value) = body
        .split_once('=')
        .ok_or_else(|| bad_spec(spec, "no '=' after the prompt kind"))?;
    let part = match kind.trim() {
        "point" => {
            let v = numbers(spec, value)?;
            match v[..] {
                [x, y] => Part::Point(x, y, 1),
                [x, y, l] if l == 0.0 || l == 1.0 => Part::Point(x, y, l as i32),
                [_, _, _] => return Err(bad_spec(spec, "a label must be 0 or 1")),
                _ => return Err(bad_spec(spec, "a point is X,Y or X,Y,LABEL")),
            }
        }
        "box" => {
            let v = numbers(spec, value)?;
            match v[..] {
                [x0, y0, x1, y1] => Part::Box([x0, y0, x1, y1]),
                _ => return Err(bad_spec(spec, "a box is X0,Y0,X1,Y1")),
            }
        }
        "mask" if !value.trim().is_empty() => Part::Mask(PathBuf::from(value)),
        "mask" => return Err(bad_spec(spec, "no mask path")),
        other => {
            return Err(bad_spec(
                spec,
                &format!("'{other}' is not point, box or mask"),
            ))
        }
    };
    Ok((id, frame, part))
}

/// The objects of `--object` specs, in the order their ids first appear. Clicks and a box of an
/// object on one frame merge into one step (two boxes there are an error); a mask is a step of
/// its own (two masks of an object on one frame are an error).
pub fn parse_object_specs(specs: &[String]) -> Result<Vec<ObjectPrompts>> {
    let mut objects: Vec<ObjectPrompts> = Vec::new();
    for spec in specs {
        let (id, frame, part) = parse_spec(spec)?;
        let idx = match objects.iter().position(|o| o.id == id) {
            Some(i) => i,
            None => {
                objects.push(ObjectPrompts {
                    id,
                    steps: Vec::new(),
                });
                objects.len() - 1
            }
        };
        let steps = &mut objects[idx].steps;
        let clicks_here = steps
            .iter()
            .position(|s| s.frame == frame && matches!(s.kind, StepKind::Clicks { .. }));
        match part {
            Part::Mask(path) => {
                if steps
                    .iter()
                    .any(|s| s.frame == frame && matches!(s.kind, StepKind::Mask(_)))
                {
                    return Err(bad_spec(
                        spec,
                        &format!("object {id} already has a mask on frame {frame}"),
                    ));
                }
                steps.push(PromptStep {
                    frame,
                    kind: StepKind::Mask(path),
                });
            }
            Part::Point(x, y, l) => match clicks_here {
                Some(i) => {
                    if let StepKind::Clicks { points, .. } = &mut steps[i].kind {
                        points.push((x, y, l));
                    }
                }
                None => steps.push(PromptStep {
                    frame,
                    kind: StepKind::Clicks {
                        points: vec![(x, y, l)],
                        bbox: None,
                    },
                }),
            },
            Part::Box(b) => match clicks_here {
                Some(i) => {
                    if let StepKind::Clicks { bbox, .. } = &mut steps[i].kind {
                        if bbox.is_some() {
                            return Err(bad_spec(
                                spec,
                                &format!("object {id} already has a box on frame {frame}"),
                            ));
                        }
                        *bbox = Some(b);
                    }
                }
                None => steps.push(PromptStep {
                    frame,
                    kind: StepKind::Clicks {
                        points: Vec::new(),
                        bbox: Some(b),
                    },
                }),
            },
        }
    }
    Ok(objects)
}

/// Every object of the command line: the prompt file's (if any) then the `--object` specs',
/// checked together (an id in both is given twice).
pub fn objects_of(args: &Args) -> Result<Vec<ObjectPrompts>> {
    let mut objects = match &args.prompts {
        Some(p) => read_prompts_file(p, args.prompts_run.as_deref())?,
        None => Vec::new(),
    };
    objects.extend(parse_object_specs(&args.objects)?);
    let origin = match (&args.prompts, args.objects.is_empty()) {
        (Some(_), false) => "--prompts and --object",
        (Some(_), true) => "--prompts",
        (None, _) => "--object",
    };
    check_objects(origin, &objects)?;
    Ok(objects)
}

/// The output name of each frame: its file stem (its position when it has no file).
fn frame_names(session: &Session) -> Vec<String> {
    (0..session.num_frames())
        .map(|i| {
            session
                .frame_path(i)
                .and_then(|p| p.file_stem())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{i:05}"))
        })
        .collect()
}

/// Where a frame's masks go and how.
struct Writer {
    video_dir: PathBuf,
    ids: Vec<u32>,
    palette: bool,
    width: usize,
    height: usize,
}

impl Writer {
    /// Write one frame from the objects' logits at video resolution (`logits[i]` is object
    /// `ids[i]`, row-major; None: no object has an output, everything is background).
    fn write(&self, name: &str, logits: Option<&[f32]>) -> Result<()> {
        let px = self.width * self.height;
        if self.palette {
            let mut labels = vec![0u16; px];
            if let Some(l) = logits {
                for (p, label) in labels.iter_mut().enumerate() {
                    // the official non-overlap rule: the highest logit wins (the first on a tie)
                    let mut best: Option<(usize, f32)> = None;
                    for i in 0..self.ids.len() {
                        let v = l[i * px + p];
                        if best.is_none_or(|(_, b)| v > b) {
                            best = Some((i, v));
                        }
                    }
                    if let Some((i, v)) = best {
                        if v > 0.0 {
                            *label = self.ids[i] as u16;
                        }
                    }
                }
            }
            let map = LabelMap {
                width: self.width,
                height: self.height,
                labels,
            };
            return write_palette_png(&self.video_dir.join(format!("{name}.png")), &map);
        }
        for (i, id) in self.ids.iter().enumerate() {
            let bytes: Vec<u8> = match logits {
                Some(l) => l[i * px..(i + 1) * px]
                    .iter()
                    .map(|&v| if v > 0.0 { 255 } else { 0 })
                    .collect(),
                None => vec![0; px],
            };
            let path = self
                .video_dir
                .join(format!("{id:03}"))
                .join(format!("{name}.png"));
            let img = image::GrayImage::from_raw(self.width as u32, self.height as u32, bytes)
                .ok_or_else(|| Error::Other("mask buffer has the wrong size".into()))?;
            write_png_atomic(&path, |tmp| {
                img.save_with_format(tmp, image::ImageFormat::Png)
            })?;
        }
        Ok(())
    }
}

/// The logits of every object of a frame result on the host, object after object.
fn logits_on_host(res: &FrameResult) -> Result<Vec<f32>> {
    Ok(res
        .video_res_masks
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// `vosbench track` with `--prompts` and/or `--object`.
pub fn run(args: &Args, switches: &EnvSwitches) -> Result<()> {
    let objects = objects_of(args)?;
    if args.davis_palette {
        if let Some(o) = objects.iter().find(|o| o.id > 255) {
            return Err(Error::Input(format!(
                "object id {} does not fit a DAVIS palette PNG (ids 1..=255)",
                o.id
            )));
        }
    }
    let out_root = args
        .out
        .clone()
        .ok_or_else(|| Error::Input("give --out DIR for the masks".into()))?;
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
    let vb = crate::weights::load_var_builder(&weights, &cfg, dtype, &device)?;
    let model = Sam2Base::new_with(&cfg, &model_opts, vb)?;
    let session_opts = SessionOptions {
        memory_fences: Some(memory_fences),
        cuda_graph,
        profiler: switches.profiler.clone(),
        ..SessionOptions::default()
    };
    let mut session = Session::open(&model, &args.frames, &device, session_opts)?;
    let n = session.num_frames();
    let (height, width) = session.video_size();
    // frames, mask sizes and contents, points and boxes: all checked before anything is written
    let steps = load_steps(&objects, n, width, height)?;
    let start = steps
        .iter()
        .map(|s| s.frame)
        .min()
        .ok_or_else(|| Error::Input("no prompt".into()))?;
    let video = args
        .frames
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let names = frame_names(&session);
    for step in &steps {
        apply_step(&mut session, step)?;
    }
    let ids = session.obj_ids();
    let writer = Writer {
        video_dir: out_root.join(&video),
        ids: ids.clone(),
        palette: args.davis_palette,
        width,
        height,
    };
    let mut dirs = vec![writer.video_dir.clone()];
    if !args.davis_palette {
        dirs.extend(
            ids.iter()
                .map(|id| writer.video_dir.join(format!("{id:03}"))),
        );
    }
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(n as u64)
    };
    bar.set_message(format!("tracking {} objects", ids.len()));
    for name in &names[..start] {
        writer.write(name, None)?;
        bar.inc(1);
    }
    session.propagate(Some(start), None, false, |res| {
        let logits = logits_on_host(&res)?;
        writer.write(&names[res.frame_idx], Some(&logits))?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    if !args.quiet {
        eprintln!(
            "tracked {} objects over {n} frames ({} image-encoder passes); masks in {}",
            ids.len(),
            session.image_encoder_passes(),
            writer.video_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specs_group_by_object_and_merge_clicks_on_a_frame() {
        let objs = parse_object_specs(&specs(&[
            "2:mask=a@b.png",
            "3:point=10,20@frame=5",
            "3:point=11,21,0@frame=5",
            "3:box=1,2,30,40@frame=5",
            "2:point=4,5@frame=0",
            "3:mask=m.png@frame=7",
        ]))
        .unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].id, 2);
        assert_eq!(
            objs[0].steps,
            vec![
                PromptStep {
                    frame: 0,
                    kind: StepKind::Mask("a@b.png".into())
                },
                PromptStep {
                    frame: 0,
                    kind: StepKind::Clicks {
                        points: vec![(4.0, 5.0, 1)],
                        bbox: None
                    }
                }
            ]
        );
        assert_eq!(
            objs[1].steps,
            vec![
                PromptStep {
                    frame: 5,
                    kind: StepKind::Clicks {
                        points: vec![(10.0, 20.0, 1), (11.0, 21.0, 0)],
                        bbox: Some([1.0, 2.0, 30.0, 40.0])
                    }
                },
                PromptStep {
                    frame: 7,
                    kind: StepKind::Mask("m.png".into())
                }
            ]
        );
    }

    #[test]
    fn bad_specs_are_one_line_input_errors() {
        for (spec, needle) in [
            ("point=1,2", "no ':'"),
            ("0:point=1,2", "not an integer >= 1"),
            ("x:point=1,2", "not an integer >= 1"),
            ("1:point=1", "X,Y or X,Y,LABEL"),
            ("1:point=1,2,3", "label must be 0 or 1"),
            ("1:point=1,b", "'b' is not a number"),
            ("1:box=1,2,3", "X0,Y0,X1,Y1"),
            ("1:mask=", "no mask path"),
            ("1:blob=3", "'blob' is not point, box or mask"),
            ("1:point=1,2@frame=-1", "frame '-1'"),
            ("1:mask", "no '='"),
        ] {
            let e = parse_object_specs(&specs(&[spec])).unwrap_err();
            assert!(matches!(e, Error::Input(_)), "{spec}");
            let m = e.to_string();
            assert!(m.contains(needle), "{spec}: '{needle}' not in '{m}'");
            assert_eq!(m.lines().count(), 1);
        }
        for (pair, needle) in [
            (
                ["1:box=1,2,3,4", "1:box=1,2,3,5"],
                "already has a box on frame 0",
            ),
            (
                ["1:mask=a.png@frame=2", "1:mask=b.png@frame=2"],
                "already has a mask",
            ),
        ] {
            let e = parse_object_specs(&specs(&pair)).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn palette_gives_each_pixel_to_the_highest_positive_logit() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer {
            video_dir: dir.path().to_path_buf(),
            ids: vec![3, 7],
            palette: true,
            width: 4,
            height: 1,
        };
        // object 3 then object 7, pixels 0..4
        let logits = [5.0, 1.0, -1.0, 2.0, /* 7: */ 1.0, 4.0, -3.0, 2.0];
        w.write("00009", Some(&logits)).unwrap();
        let got = crate::data::masks::read_label_png(&dir.path().join("00009.png")).unwrap();
        assert_eq!(got.labels, vec![3, 7, 0, 3]);
    }
}
