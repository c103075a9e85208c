//! `--session-objects all`: one tracking session per (video, model) with every object of the
//! video, the official semi-supervised VOS protocol (`tools/vos_inference.py`): each object is
//! prompted on its own prompt frame (with `_mask` models its ground-truth mask on its first
//! annotated frame), the session runs forward from the earliest prompt frame, the image encoder
//! runs once per frame for all objects, and an object has outputs from its prompt frame on.
//!
//! Rows stay one per (video, object, model): each object's J&F over its own scored frames within
//! its own clip (the same clip as with one session per object). The timing and memory columns
//! are the session's, the same on every row of the video; `session_objects`, `session_fps` and
//! `object_frames_per_s` say what they measure. The session is the unit of work: if any row of a
//! video is missing, the whole video runs again and all its rows are replaced.

use crate::bench::cache::CachedFrames;
use crate::bench::mem::{self, HostSampler};
use crate::bench::model::prompt_object;
use crate::bench::plan::{InferenceConfig, Metadata, ModelPlan, ObjectMeta, VideoMeta};
use crate::bench::progress::bar;
use crate::bench::results::{mib, round, Results, Row, RowStatus};
use crate::bench::row_fill::{
    masks_dir, one_line, save_object_masks, scored_frames, timing_columns,
};
use crate::data::masks::{Mask, PackedMask};
use crate::data::overlay::write_overlay;
use crate::data::sav::Annotation;
use crate::error::{Error, Result};
use crate::eval::evaluator::ObjectScorer;
use crate::exec::EnvSwitches;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::Session;
use candle_core::{DType, Device};
use std::time::Instant;

/// One video's session with one model: what it runs with, and how phase B makes an object's row
/// (key, prompt, clip and sizes; the same as with one session per object) and its clip end.
pub struct VideoJob<'a> {
    pub cfg: &'a InferenceConfig,
    pub plan: &'a ModelPlan,
    pub video: &'a VideoMeta,
    pub sampler: &'a HostSampler,
    pub meter: &'a mem::DeviceMeter,
    pub device: &'a Device,
    pub switches: &'a EnvSwitches,
    pub base_row: &'a dyn Fn(&ObjectMeta) -> Row,
    pub clip_end: &'a dyn Fn(&ObjectMeta) -> usize,
}

/// The videos whose session must run for `model`: those with a missing (or errored) row.
pub fn videos_to_run<'a>(meta: &'a Metadata, results: &Results, model: &str) -> Vec<&'a VideoMeta> {
    meta.videos
        .iter()
        .filter(|v| {
            v.objects
                .iter()
                .any(|o| !results.is_done(&v.name, &o.id, model))
        })
        .collect()
}

/// Run the session of `ctx.video` (every object) and return one row per object. A failure of the session is recorded on every row (status `error` or
/// `budget_exceeded`); only a failure to measure is an error here.
pub fn run_video(ctx: &VideoJob<'_>, model: Option<&Sam2Base>) -> Result<Vec<Row>> {
    let baseline_rss = Some(mib(mem::current_rss_bytes()));
    let baseline_gpu = ctx.meter.peaks()?.used_bytes.map(mib);
    let mut rows: Vec<Row> = ctx
        .video
        .objects
        .iter()
        .map(|o| {
            let mut r = (ctx.base_row)(o);
            r.baseline_rss_MiB = baseline_rss;
            r.baseline_gpu_MiB = baseline_gpu;
            r.session_objects = Some(ctx.video.objects.len());
            r
        })
        .collect();
    let outcome = match model {
        None => Err(Error::Budget(format!(
            "setup predicted a {:.1} MiB peak, over the budget",
            ctx.plan.predicted_peak_bytes as f64 / 1048576.0
        ))),
        Some(m) => track_video(ctx, m, &mut rows),
    };
    match outcome {
        Ok(()) => {}
        Err(Error::Budget(msg)) => {
            for r in &mut rows {
                r.status = RowStatus::BudgetExceeded;
                r.error = msg.clone();
            }
        }
        Err(e) => {
            let msg = one_line(&e);
            for r in &mut rows {
                r.status = RowStatus::Error;
                r.error = msg.clone();
            }
        }
    }
    ctx.meter.trim()?;
    Ok(rows)
}

fn track_video(ctx: &VideoJob<'_>, model: &Sam2Base, rows: &mut [Row]) -> Result<()> {
    let opts = &ctx.cfg.options;
    let v = ctx.video;
    let device = ctx.device;
    let (w, h) = (v.width, v.height);
    let objects = &v.objects;
    let n_obj = objects.len();
    let ends: Vec<usize> = objects.iter().map(|o| (ctx.clip_end)(o)).collect();
    let start = objects
        .iter()
        .map(|o| o.prompt_frame)
        .min()
        .ok_or_else(|| Error::Other(format!("{} has no object", v.name)))?;
    let end = ends.iter().copied().max().unwrap_or(start + 1);
    let tracks: Vec<_> = objects.iter().map(|o| o.track()).collect();
    let gt_of = |i: usize, f: usize| -> Result<Mask> {
        let (af, p) = objects[i]
            .annotations
            .iter()
            .find(|(af, _)| *af == f)
            .ok_or_else(|| Error::Other(format!("no annotation for frame {f}")))?;
        tracks[i].load_mask(&Annotation {
            frame: *af,
            path: p.clone(),
        })
    };
    let mut scorers: Vec<ObjectScorer> = objects
        .iter()
        .zip(&ends)
        .map(|(o, &e)| ObjectScorer::new(&scored_frames(o, e), false))
        .collect();
    // Nothing is predicted for an object before its prompt frame: empty masks there.
    let empty = Mask::empty(w, h);
    for (i, o) in objects.iter().enumerate() {
        for f in scored_frames(o, ends[i]) {
            if f < o.prompt_frame {
                scorers[i].feed(f, &empty, &gt_of(i, f)?)?;
            }
        }
    }

    ctx.sampler.reset_peak();
    ctx.meter.reset_peak()?;
    let side = ctx.plan.config.image_size;
    let cache_file = v.cache_for(side).ok_or_else(|| {
        Error::Input(format!(
            "metadata.json has no frame cache of {} at side {side}; rerun setup",
            v.name
        ))
    })?;
    let t_setup = Instant::now();
    let frames = CachedFrames::open(cache_file, opts.max_frames_in_mem)?;
    let mut session = Session::with_frames(
        model,
        Box::new(frames),
        device,
        opts.session_options()
            .with_profiler(ctx.switches.profiler.clone()),
    );
    // session object i + 1 is objects[i]; every prompt before the propagation, as the official
    // vos_inference does (a late object is skipped until its prompt frame)
    for (i, o) in objects.iter().enumerate() {
        prompt_object(&mut session, i as u32 + 1, o, ctx.plan.prompt)?;
    }
    device.synchronize()?;
    let setup_ms = Some(round(t_setup.elapsed().as_secs_f64() * 1e3, 1));

    let keep_masks = opts.save_overlays || opts.save_masks;
    let mut masks: Vec<Vec<Option<PackedMask>>> =
        vec![vec![None; if keep_masks { end } else { 0 }]; n_obj];
    let mut lat: Vec<f64> = Vec::new();
    let mut object_frames = 0usize;
    let mut first = true;
    let mut last = Instant::now();
    let frames_bar = bar(opts.quiet, (end - start) as u64, "frames");
    let budget = opts.mem_budget_bytes;
    let outcome = session.propagate(Some(start), Some(end - start - 1), false, |r| {
        device.synchronize()?;
        let now = Instant::now();
        if !first {
            lat.push(now.duration_since(last).as_secs_f64() * 1e3);
            object_frames += (0..r.obj_ids.len()).filter(|&i| r.has_output(i)).count();
        }
        first = false;
        let f = r.frame_idx;
        let fg = r
            .video_res_masks
            .gt(0f32)?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        let px = w * h;
        for i in 0..n_obj.min(r.obj_ids.len()) {
            if !r.has_output(i) || f >= ends[i] {
                continue;
            }
            let data = fg[i * px..(i + 1) * px].iter().map(|&v| v > 0).collect();
            let mask = Mask::from_vec(w, h, data)?;
            if scorers[i].is_scored(f) {
                scorers[i].feed(f, &mask, &gt_of(i, f)?)?;
            }
            if keep_masks {
                masks[i][f] = Some(PackedMask::from_mask(&mask));
            }
        }
        if let Some(b) = budget {
            let used = ctx
                .cfg
                .budget_figure
                .read(ctx.meter, mem::current_rss_bytes())?;
            if !b.allows(used) {
                return Err(Error::Budget(format!(
                    "{} used {:.1} MiB on frame {f}, over the {:.1} MiB budget",
                    ctx.cfg.budget_figure,
                    used as f64 / 1048576.0,
                    b.bytes() as f64 / 1048576.0
                )));
            }
        }
        frames_bar.inc(1);
        last = Instant::now();
        Ok(())
    });
    frames_bar.finish_and_clear();
    drop(session);
    let dev = ctx.meter.peaks()?;
    for r in rows.iter_mut() {
        r.cpu_peak_rss_MiB = Some(mib(ctx.sampler.peak_rss_bytes()));
        r.system_peak_MiB = Some(mib(ctx.sampler.system_peak_used_bytes()));
        r.gpu_peak_alloc_MiB = dev.peak_alloc_bytes.map(mib);
        r.gpu_peak_reserved_MiB = dev.peak_reserved_bytes.map(mib);
        r.setup_ms = setup_ms;
    }
    outcome?;

    let total_s: f64 = lat.iter().sum::<f64>() / 1e3;
    for (i, (r, scorer)) in rows.iter_mut().zip(scorers).enumerate() {
        timing_columns(r, &lat, opts.warmup_frames);
        r.session_fps = r.fps;
        r.object_frames_per_s = (total_s > 0.0).then(|| round(object_frames as f64 / total_s, 2));
        if let Some(s) = scorer.finish()? {
            let (j, f) = (s.j / 100.0, s.f / 100.0);
            r.J = Some(round(j, 4));
            r.F = Some(round(f, 4));
            r.JandF = Some(round((j + f) / 2.0, 4));
        }
        let o = &objects[i];
        if opts.save_overlays {
            let dir = opts
                .out_dir
                .join("overlays")
                .join(&v.name)
                .join(&o.id)
                .join(&ctx.plan.name);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            for (f, m) in masks[i].iter().enumerate().take(ends[i]) {
                let Some(m) = m else { continue };
                write_overlay(
                    &dir.join(format!("{f:05}.png")),
                    &v.frames[f],
                    &m.to_mask().data,
                )?;
            }
            r.overlay = dir.display().to_string();
        }
        if opts.save_masks {
            let dir = masks_dir(opts, &ctx.plan.name);
            save_object_masks(&dir, v, &o.id, &masks[i], ends[i])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: &str) -> ObjectMeta {
        ObjectMeta {
            id: id.into(),
            label: None,
            annotations: Vec::new(),
            prompt_frame: 0,
            point: (0, 0),
            bbox: [0; 4],
            prompt_area: 1,
        }
    }

    #[test]
    fn a_video_runs_again_when_any_of_its_rows_is_missing() {
        let video = |name: &str| VideoMeta {
            name: name.into(),
            frames: Vec::new(),
            width: 1,
            height: 1,
            objects: vec![object("001"), object("002")],
            caches: Vec::new(),
        };
        let meta = Metadata {
            split_dir: "s".into(),
            layout: "sav".into(),
            videos: vec![video("a"), video("b"), video("c")],
            issues: Vec::new(),
            shuffle_seed: None,
            video_order: Vec::new(),
        };
        let mut results = Results::default();
        let row = |v: &str, o: &str, status| Row {
            video: v.into(),
            object: o.into(),
            model: "m_mask".into(),
            status,
            ..Row::default()
        };
        // a: complete; b: one row missing; c: one row errored
        results.push(row("a", "001", RowStatus::Ok));
        results.push(row("a", "002", RowStatus::BudgetExceeded));
        results.push(row("b", "001", RowStatus::Ok));
        results.push(row("c", "001", RowStatus::Ok));
        results.push(row("c", "002", RowStatus::Error));
        let names: Vec<&str> = videos_to_run(&meta, &results, "m_mask")
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(videos_to_run(&meta, &results, "other").len(), 3);
        // a rerun replaces rows by key: no duplicates
        results.push(row("b", "001", RowStatus::Ok));
        results.push(row("b", "002", RowStatus::Ok));
        assert_eq!(results.rows().len(), 6);
        assert!(videos_to_run(&meta, &results, "m_mask")
            .iter()
            .all(|v| v.name == "c"));
    }
}
