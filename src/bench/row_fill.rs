//! What filling a benchmark row takes, shared by the per-object sessions ([`crate::bench::infer`])
//! and the per-video sessions ([`crate::bench::video_session`]): the scored frames, the timing
//! columns, the predicted masks on disk, a one-line error.

use crate::bench::plan::{BenchOptions, ObjectMeta, VideoMeta};
use crate::bench::results::{percentile, round, Row};
use crate::data::masks::{write_mask_png, Mask, PackedMask};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The frames scored for an object: its annotated frames without the first and last (the
/// official SA-V and DAVIS rule), restricted to the processed clip.
pub fn scored_frames(o: &ObjectMeta, clip_end: usize) -> Vec<usize> {
    let mut ann: Vec<usize> = o.annotations.iter().map(|(f, _)| *f).collect();
    ann.sort_unstable();
    ann.dedup();
    if ann.len() <= 2 {
        return Vec::new();
    }
    ann[1..ann.len() - 1]
        .iter()
        .copied()
        .filter(|&f| f < clip_end)
        .collect()
}

/// The timing columns from the per-frame latencies (ms) of a session: fps, mean latency, steady
/// fps without the first `warmup` frames, percentiles.
pub fn timing_columns(row: &mut Row, lat: &[f64], warmup: usize) {
    if lat.is_empty() {
        return;
    }
    let total: f64 = lat.iter().sum();
    row.fps = Some(round(lat.len() as f64 * 1e3 / total, 2));
    row.latency_ms = Some(round(total / lat.len() as f64, 1));
    let steady = &lat[warmup.min(lat.len())..];
    if !steady.is_empty() {
        let st: f64 = steady.iter().sum();
        row.fps_steady = Some(round(steady.len() as f64 * 1e3 / st, 2));
    }
    let mut sorted = lat.to_vec();
    sorted.sort_by(f64::total_cmp);
    row.latency_p50_ms = percentile(&sorted, 50.0).map(|v| round(v, 1));
    row.latency_p90_ms = percentile(&sorted, 90.0).map(|v| round(v, 1));
    row.latency_p99_ms = percentile(&sorted, 99.0).map(|v| round(v, 1));
}

/// Write an object's predicted masks as binary PNGs in the SA-V layout
/// (`dir/<video>/<object>/<frame name>.png`, frame name = the source frame's file stem) for every
/// frame before `clip_end`, empty where there is no prediction, so the official evaluators run
/// on them unchanged.
pub fn save_object_masks(
    dir: &Path,
    video: &VideoMeta,
    object: &str,
    masks: &[Option<PackedMask>],
    clip_end: usize,
) -> Result<()> {
    let obj_dir = dir.join(&video.name).join(object);
    std::fs::create_dir_all(&obj_dir).map_err(|e| Error::io(&obj_dir, e))?;
    let empty = Mask::empty(video.width, video.height);
    for f in 0..clip_end.min(video.frames.len()) {
        let name = video.frames[f]
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{f:05}"));
        let path = obj_dir.join(format!("{name}.png"));
        match masks.get(f).and_then(Option::as_ref) {
            Some(m) => write_mask_png(&path, &m.to_mask())?,
            None => write_mask_png(&path, &empty)?,
        }
    }
    Ok(())
}

/// Where `--save-masks` puts a model's masks.
pub fn masks_dir(opts: &BenchOptions, model: &str) -> PathBuf {
    opts.out_dir.join("masks").join(model)
}

/// The first line of an error (candle errors carry a backtrace when RUST_BACKTRACE is set).
pub fn one_line(e: &Error) -> String {
    // the first line only: candle errors carry a backtrace when RUST_BACKTRACE is set
    e.to_string().lines().next().unwrap_or("").to_string()
}
