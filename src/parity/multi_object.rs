//! Multi-object sessions against the official predictors (`make_multi_object_fixture.py`,
//! fixtures `multi_object` and `edgetam_multi_object`; names in tests/reference/FIXTURES.md).
//!
//! Every run of the scene's `prompts.json` that the fixture holds tensors for is tracked by ONE
//! vosbench session holding all of the run's objects, whatever the official run did (the `masks`
//! run is one official session per object: vosbench's shared session must equal it, which is the
//! per-object independence the official predictor promises). Two ways to bring objects in:
//! every prompt before the propagation (the late object is then skipped until its first frame),
//! and `+join`, where tracking stops before each later prompt frame and resumes after the prompt
//! (the official `late_join` call sequence). Each object's outputs are compared frame by frame:
//! the frames it has an output on, low-res logits, mask IoU, object score, object pointer.

use super::fixture::{pillow_frames, read_tensors};
use super::tracking::{TrackedFrame, TrackedRun};
use crate::compare::{diff, mask_iou, rel_from_sums, rel_l2};
use crate::config::{Family, ModelConfig, ObjectBatching};
use crate::data::prompt_file::{read_prompt_runs, PromptRun};
use crate::error::{Error, Result};
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::frames::FrameSource;
use crate::tracker::prompts::{apply_step, load_steps, LoadedStep};
use crate::tracker::session::{FrameResult, Session, SessionOptions};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// What one run of a multi-object session gave.
#[derive(Debug, Clone)]
pub struct SessionRun {
    /// The run's name (`+join` appended when objects joined during tracking).
    pub name: String,
    /// Each object's id and the result of its last prompt step.
    pub prompt_results: Vec<(u32, FrameResult)>,
    /// Every propagated frame, in the order the session yielded them.
    pub frames: Vec<FrameResult>,
    /// Image-encoder passes of the session.
    pub image_encoder_passes: usize,
}

/// Track one run of a prompt file in one session on `frames`. With `join` every prompt on a
/// later frame than the first is given when tracking reaches that frame (tracking stops before
/// it and resumes from it); otherwise all prompts come first and one propagation follows.
pub fn track_prompt_run(
    model: &Sam2Base,
    frames: Box<dyn FrameSource + '_>,
    device: &Device,
    run: &str,
    prompts: &PromptRun,
    opts: SessionOptions,
    join: bool,
) -> Result<SessionRun> {
    let mut s = Session::with_frames(model, frames, device, opts);
    let (h, w) = s.video_size();
    let steps = load_steps(&prompts.objects, s.num_frames(), w, h)?;
    let step_frames: BTreeSet<usize> = steps.iter().map(|st| st.frame).collect();
    let groups: Vec<Vec<&LoadedStep>> = if join {
        step_frames
            .iter()
            .map(|&f| steps.iter().filter(|st| st.frame == f).collect())
            .collect()
    } else {
        vec![steps.iter().collect()]
    };
    let mut last: BTreeMap<u32, FrameResult> = BTreeMap::new();
    let mut results = Vec::new();
    let n = s.num_frames();
    for (k, group) in groups.iter().enumerate() {
        for st in group {
            last.insert(st.obj_id, apply_step(&mut s, st)?);
        }
        let start = group.iter().map(|st| st.frame).min().unwrap_or(0);
        let stop = groups
            .get(k + 1)
            .and_then(|g| g.first())
            .map_or(n, |st| st.frame);
        // frames start..stop-1
        s.propagate(Some(start), Some(stop - start - 1), false, |r| {
            results.push(r);
            Ok(())
        })?;
    }
    Ok(SessionRun {
        name: if join {
            format!("{run}+join")
        } else {
            run.to_string()
        },
        prompt_results: last.into_iter().collect(),
        frames: results,
        image_encoder_passes: s.image_encoder_passes(),
    })
}

/// One object's row of a multi-object result: [1, ...].
fn obj_row(t: &Tensor, i: usize) -> Result<Tensor> {
    Ok(t.narrow(0, i, 1)?)
}

/// Compare a session run object by object with the fixture's tensors of run `reference`
/// (`{reference}.obj.{id}.*`).
pub fn compare_run(
    got: &SessionRun,
    reference: &str,
    t: &HashMap<String, Tensor>,
) -> Result<TrackedRun> {
    let get = |n: &str| -> Result<&Tensor> {
        t.get(n)
            .ok_or_else(|| Error::Input(format!("multi-object fixture has no tensor '{n}'")))
    };
    let host = |n: &str| -> Result<Vec<f32>> {
        Ok(get(n)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    let last = got
        .frames
        .last()
        .ok_or_else(|| Error::Other(format!("{}: no frame was tracked", got.name)))?;
    // every object of the session (objects that joined later are in the last frame's list)
    let ids = last.obj_ids.clone();
    let mut want_frames: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
    for &id in &ids {
        let fr = host(&format!("{reference}.obj.{id}.frames"))?;
        want_frames.insert(id, fr.into_iter().map(|v| v as usize).collect());
    }
    // every reference frame of every object is yielded once
    let yielded: Vec<usize> = got.frames.iter().map(|r| r.frame_idx).collect();
    let all: BTreeSet<usize> = want_frames.values().flatten().copied().collect();
    if yielded.iter().copied().collect::<BTreeSet<_>>() != all || yielded.len() != all.len() {
        return Err(Error::Other(format!(
            "{}: frames yielded {yielded:?}, the reference has outputs on {all:?}",
            got.name
        )));
    }
    let mut frames = Vec::new();
    let (mut sq_err, mut sq_ref) = (0f64, 0f64);
    for r in &got.frames {
        let f = r.frame_idx;
        for (i, &id) in r.obj_ids.iter().enumerate() {
            let want = want_frames[&id].contains(&f);
            if r.has_output(i) != want {
                return Err(Error::Other(format!(
                    "{}: object {id} {} an output on frame {f}, the reference {}",
                    got.name,
                    if want { "has no" } else { "has" },
                    if want { "has one" } else { "has none" }
                )));
            }
            if !want {
                continue;
            }
            let pre = format!("{reference}.obj.{id}.frame.{f}");
            let low = diff(
                &obj_row(&r.low_res_masks, i)?,
                get(&format!("{pre}.low_res"))?,
            )?;
            sq_err += low.sq_err;
            sq_ref += low.sq_ref;
            let (iou, frac) = mask_iou(
                &obj_row(&r.video_res_masks, i)?,
                get(&format!("{pre}.video_res"))?,
            )?;
            let ref_score = host(&format!("{pre}.object_score"))?[0];
            let score = r.object_score_logits[i].unwrap_or(f32::NAN);
            let ptr = r.obj_ptrs[i]
                .as_ref()
                .ok_or_else(|| Error::Other(format!("{pre}: the object has no pointer")))?;
            frames.push(TrackedFrame {
                run: got.name.clone(),
                obj_id: id,
                frame: f,
                low_res_rel_l2: low.rel_l2(),
                iou,
                ref_fg_fraction: frac,
                object_score: score,
                ref_object_score: ref_score,
                object_score_rel: ((score - ref_score).abs() / ref_score.abs().max(1.0)) as f64,
                obj_ptr_rel_l2: rel_l2(ptr, get(&format!("{pre}.obj_ptr"))?)?,
            });
        }
    }
    // the mask each object's last prompt call returned, against the reference's output there
    let mut prompt_iou = 1.0f64;
    let mut prompt_frame = usize::MAX;
    for (id, r) in &got.prompt_results {
        let i =
            r.obj_ids.iter().position(|x| x == id).ok_or_else(|| {
                Error::Other(format!("object {id} missing from its prompt result"))
            })?;
        let f = r.frame_idx;
        prompt_frame = prompt_frame.min(f);
        let (iou, _) = mask_iou(
            &obj_row(&r.video_res_masks, i)?,
            get(&format!("{reference}.obj.{id}.frame.{f}.video_res"))?,
        )?;
        prompt_iou = prompt_iou.min(iou);
    }
    Ok(TrackedRun {
        run: got.name.clone(),
        prompt_frame,
        prompt_iou,
        low_res_rel_l2_all: rel_from_sums(sq_err, sq_ref),
        frames,
    })
}

/// The runs of a multi-object fixture this family holds tensors for, with their prompts (the
/// scene's `prompts.json`).
pub fn fixture_runs(
    family: Family,
    scene_dir: &Path,
    t: &HashMap<String, Tensor>,
) -> Result<Vec<(String, PromptRun)>> {
    let fam = match family {
        Family::Sam2 => "sam2",
        Family::Edgetam => "edgetam",
    };
    let runs = read_prompt_runs(&scene_dir.join("prompts.json"))?;
    let out: Vec<(String, PromptRun)> = runs
        .into_iter()
        .filter(|(name, r)| {
            r.families.iter().any(|f| f == fam)
                && r.objects
                    .first()
                    .is_some_and(|o| t.contains_key(&format!("{name}.obj.{}.frames", o.id)))
        })
        .collect();
    if out.is_empty() {
        return Err(Error::Input(format!(
            "{}: no run of prompts.json has per-object tensors in this fixture",
            scene_dir.display()
        )));
    }
    Ok(out)
}

/// Whether a video fixture is a multi-object one (per-object tensors `*.obj.*`).
pub fn is_multi_object_fixture(fixture_dir: &Path) -> Result<bool> {
    let t = read_tensors(&fixture_dir.join("tracking.safetensors"))?;
    Ok(t.keys().any(|k| k.contains(".obj.")))
}

/// Track every run of a multi-object fixture (tensors in `fixture_dir`, the scene with
/// `prompts.json` and `pillow_rgb.safetensors` in `scene_dir`) with one session per run and per
/// way of joining, objects run as `batching` says, and compare each with the official outputs.
pub fn run_multi_object(
    cfg: &ModelConfig,
    weights: VarBuilder,
    fixture_dir: &Path,
    scene_dir: &Path,
    device: &Device,
    model_opts: &ModelOptions,
    batching: ObjectBatching,
) -> Result<Vec<TrackedRun>> {
    let t = read_tensors(&fixture_dir.join("tracking.safetensors"))?;
    let model = Sam2Base::new_with(cfg, model_opts, weights)?;
    let rgb = scene_dir.join("pillow_rgb.safetensors");
    let mut out = Vec::new();
    for (name, prompts) in fixture_runs(cfg.family, scene_dir, &t)? {
        let first_frames: BTreeSet<usize> = prompts
            .objects
            .iter()
            .filter_map(|o| o.steps.first().map(|s| s.frame))
            .collect();
        let joins: &[bool] = if first_frames.len() > 1 {
            &[false, true]
        } else {
            &[false]
        };
        for &join in joins {
            let opts = SessionOptions {
                postprocessing: prompts.postprocessing,
                object_batching: batching,
                ..SessionOptions::default()
            };
            let frames = Box::new(pillow_frames(&rgb)?);
            let got = track_prompt_run(&model, frames, device, &name, &prompts, opts, join)?;
            out.push(compare_run(&got, &name, &t)?);
        }
    }
    Ok(out)
}
