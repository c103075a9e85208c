//! Whole-video tracking against the official video predictor (`make_sam2_video_fixture.py`,
//! `make_edgetam_video_fixture.py`): every prompted run of a video fixture is tracked by a fresh
//! [`Session`] and compared frame by frame (low-res logits, mask IoU, object score, object
//! pointer).

use super::fixture::{pillow_frames, read_tensors};
use crate::compare::{diff, mask_iou, rel_from_sums, rel_l2};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::frames::{FrameSource, VideoFrames};
use crate::tracker::session::{FrameResult, Prompt, Session, SessionOptions};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;

/// One tracked frame against the official video predictor.
#[derive(Debug, Clone)]
pub struct TrackedFrame {
    /// `point` or `box`; a multi-object run's name
    pub run: String,
    /// The object (1 in single-object runs)
    pub obj_id: u32,
    pub frame: usize,
    /// relative L2 of the hole-filled low-res logits
    pub low_res_rel_l2: f64,
    /// IoU of the video-resolution masks (> 0)
    pub iou: f64,
    /// positive-pixel fraction of the reference mask
    pub ref_fg_fraction: f64,
    pub object_score: f32,
    pub ref_object_score: f32,
    /// |ours - ref| / max(|ref|, 1)
    pub object_score_rel: f64,
    pub obj_ptr_rel_l2: f64,
}

/// One prompted run of a video fixture.
#[derive(Debug, Clone)]
pub struct TrackedRun {
    pub run: String,
    /// The (earliest) prompt frame
    pub prompt_frame: usize,
    /// IoU of the mask returned for the prompt itself (the lowest over the objects)
    pub prompt_iou: f64,
    /// relative L2 of the low-res logits of every frame together
    pub low_res_rel_l2_all: f64,
    pub frames: Vec<TrackedFrame>,
}

fn first_value(t: &Tensor) -> Result<f32> {
    let v = t
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    v.first()
        .copied()
        .ok_or_else(|| Error::Input("empty fixture tensor".into()))
}

/// The frames of a video fixture: Pillow's decoded RGB when the fixture has
/// `pillow_rgb.safetensors` (isolates JPEG decoding), else the JPEGs under `frames/`.
fn fixture_frames(dir: &Path) -> Result<Box<dyn FrameSource>> {
    let rgb_path = dir.join("pillow_rgb.safetensors");
    if rgb_path.is_file() {
        return Ok(Box::new(pillow_frames(&rgb_path)?));
    }
    Ok(Box::new(VideoFrames::open(dir.join("frames"))?))
}

/// Track every run of a video fixture (`tracking.safetensors`: `point` and/or `box`, names in
/// FIXTURES.md) with a fresh session each, and compare frame by frame. A run yields frames
/// forward from its prompt frame, then backward when the reference went backward too.
pub fn run_tracking(
    cfg: &ModelConfig,
    weights: VarBuilder,
    fixture_dir: &Path,
    device: &Device,
) -> Result<Vec<TrackedRun>> {
    let opts = ModelOptions::default();
    run_tracking_with_frames(cfg, weights, fixture_dir, fixture_dir, device, &opts)
}

/// [`run_tracking`] with the video frames taken from `frames_dir` (its `pillow_rgb.safetensors`,
/// else its `frames/` JPEGs), for video fixtures that reuse another fixture's frames, and the
/// model built with `model_opts` (the CLI's convolution settings).
pub fn run_tracking_with_frames(
    cfg: &ModelConfig,
    weights: VarBuilder,
    fixture_dir: &Path,
    frames_dir: &Path,
    device: &Device,
    model_opts: &ModelOptions,
) -> Result<Vec<TrackedRun>> {
    let t = read_tensors(&fixture_dir.join("tracking.safetensors"))?;
    let model = Sam2Base::new_with(cfg, model_opts, weights)?;
    let get = |n: &str| -> Result<&Tensor> {
        t.get(n)
            .ok_or_else(|| Error::Input(format!("video fixture has no tensor '{n}'")))
    };
    let host_vec = |n: &str| -> Result<Vec<f32>> {
        Ok(get(n)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    let mut runs = Vec::new();
    for run in ["point", "box"] {
        if !t.contains_key(&format!("{run}.order")) {
            continue;
        }
        let order: Vec<usize> = host_vec(&format!("{run}.order"))?
            .into_iter()
            .map(|v| v as usize)
            .collect();
        let pf = host_vec(&format!("{run}.prompt.frame"))?;
        let prompt_frame = *pf
            .first()
            .ok_or_else(|| Error::Input(format!("{run}.prompt.frame is empty")))?
            as usize;
        let prompt = if run == "box" {
            let b = host_vec("box.prompt.box")?;
            if b.len() != 4 {
                return Err(Error::Input("box.prompt.box must hold 4 numbers".into()));
            }
            Prompt {
                points: vec![],
                bbox: Some([b[0], b[1], b[2], b[3]]),
            }
        } else {
            let c = host_vec("point.prompt.coords")?;
            let l = host_vec("point.prompt.labels")?;
            if c.len() != 2 * l.len() || l.is_empty() {
                return Err(Error::Input(
                    "point.prompt.coords must be [1, N, 2] and labels [1, N]".into(),
                ));
            }
            Prompt {
                points: l
                    .iter()
                    .enumerate()
                    .map(|(i, &lab)| (c[2 * i], c[2 * i + 1], lab as i32))
                    .collect(),
                bbox: None,
            }
        };
        let frames = fixture_frames(frames_dir)?;
        let mut s = Session::with_frames(&model, frames, device, SessionOptions::default());
        let r = s.add_prompt(prompt_frame, 1, &prompt)?;
        let (prompt_iou, _) =
            mask_iou(&r.video_res_masks, get(&format!("{run}.prompt.video_res"))?)?;
        let mut results: Vec<FrameResult> = Vec::new();
        s.propagate(Some(prompt_frame), None, false, |r| {
            results.push(r);
            Ok(())
        })?;
        if order.iter().any(|&f| f < prompt_frame) {
            s.propagate(Some(prompt_frame), None, true, |r| {
                results.push(r);
                Ok(())
            })?;
        }
        let got_order: Vec<usize> = results.iter().map(|r| r.frame_idx).collect();
        if got_order != order {
            return Err(Error::Other(format!(
                "{run}: frames yielded in order {got_order:?}, the reference yielded {order:?}"
            )));
        }
        let mut frames_out = Vec::new();
        let (mut sq_err, mut sq_ref) = (0f64, 0f64);
        for r in &results {
            let i = r.frame_idx;
            let pre = format!("{run}.frame.{i}");
            let low = diff(&r.low_res_masks, get(&format!("{pre}.low_res"))?)?;
            // the all-frames relative L2 from every frame's sums
            sq_err += low.sq_err;
            sq_ref += low.sq_ref;
            let (iou, frac) = mask_iou(&r.video_res_masks, get(&format!("{pre}.video_res"))?)?;
            let ref_score = first_value(get(&format!("{pre}.object_score"))?)?;
            let score = r
                .object_score_logits
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| Error::Other(format!("{pre}: the object has no output")))?;
            let ptr = r
                .obj_ptrs
                .first()
                .and_then(|p| p.as_ref())
                .ok_or_else(|| Error::Other(format!("{pre}: the object has no pointer")))?;
            let ptr_rel_l2 = rel_l2(ptr, get(&format!("{pre}.obj_ptr"))?)?;
            frames_out.push(TrackedFrame {
                run: run.to_string(),
                obj_id: 1,
                frame: i,
                low_res_rel_l2: low.rel_l2(),
                iou,
                ref_fg_fraction: frac,
                object_score: score,
                ref_object_score: ref_score,
                object_score_rel: ((score - ref_score).abs() / ref_score.abs().max(1.0)) as f64,
                obj_ptr_rel_l2: ptr_rel_l2,
            });
        }
        runs.push(TrackedRun {
            run: run.to_string(),
            prompt_frame,
            prompt_iou,
            low_res_rel_l2_all: rel_from_sums(sq_err, sq_ref),
            frames: frames_out,
        });
    }
    if runs.is_empty() {
        return Err(Error::Input(format!(
            "{}: the video fixture has neither point.order nor box.order",
            fixture_dir.display()
        )));
    }
    Ok(runs)
}
