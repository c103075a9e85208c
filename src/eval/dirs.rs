//! Scoring a prediction folder against a ground-truth folder, as the official
//! `sav_evaluator.py --gt_root GT --pred_root PRED` does.
//!
//! Layouts (detected per video, as the official code):
//! - SA-V: `GT/<video>/<obj>/<frame>.png`, one binary mask per PNG (`> 0`).
//! - DAVIS-style: `GT/<video>/<frame>.png` whose values are object ids (palette indices).
//!
//! The prediction folder mirrors the ground truth. Where the official code stops with an
//! assertion, this reports instead:
//! - a missing prediction PNG: with `strict`, an input error naming the file; otherwise it is
//!   scored as an empty mask and listed in [`Report::missing_predictions`];
//! - an unreadable or mis-sized prediction PNG: likewise (listed in [`Report::problems`]);
//! - a ground-truth video without a prediction folder: with `strict`, an error (the official
//!   strict mode also rejects prediction videos absent from the ground truth); otherwise the
//!   video is left out (the official non-strict rule) and listed;
//! - an object that never appears in the ground truth of a scored frame, or that has fewer than
//!   three annotated frames when the first and last are skipped: not scored, listed in
//!   [`Report::unscored`];
//! - an unreadable ground-truth PNG: with `strict` an error, otherwise the object (SA-V) or video
//!   (DAVIS-style) is not scored and listed.

use super::evaluator::{ObjectKey, ObjectResult, ObjectScore, Report, SequenceEvaluator};
use crate::data::masks::{read_label_png, LabelMap};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Skip each object's first and last annotated frame (SA-V val/test and DAVIS
    /// semi-supervised rule). Default true.
    pub skip_first_and_last: bool,
    /// Turn every missing or broken prediction and every video mismatch into an error.
    pub strict: bool,
    /// Worker threads (0: all cores).
    pub threads: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            skip_first_and_last: true,
            strict: false,
            threads: 0,
        }
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, bool)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.path().is_dir();
        out.push((name, is_dir));
    }
    out.sort();
    Ok(out)
}

fn video_dirs(root: &Path) -> Result<Vec<String>> {
    Ok(sorted_entries(root)?
        .into_iter()
        .filter(|(_, d)| *d)
        .map(|(n, _)| n)
        .collect())
}

#[derive(Default)]
struct VideoOut {
    objects: Vec<(ObjectKey, ObjectScore)>,
    missing: Vec<PathBuf>,
    unscored: Vec<String>,
    problems: Vec<String>,
}

struct Ctx<'a> {
    opts: &'a EvalOptions,
}

impl Ctx<'_> {
    fn scored<'b>(&self, frames: &'b [String]) -> &'b [String] {
        if !self.opts.skip_first_and_last {
            frames
        } else if frames.len() <= 2 {
            &[]
        } else {
            &frames[1..frames.len() - 1]
        }
    }

    /// The prediction for a ground truth of `w x h`, or an all-zero map where it is missing or
    /// broken (non-strict).
    fn pred(
        &self,
        path: &Path,
        gt_path: &Path,
        w: usize,
        h: usize,
        out: &mut VideoOut,
    ) -> Result<LabelMap> {
        let zeros = || LabelMap {
            width: w,
            height: h,
            labels: vec![0; w * h],
        };
        if !path.is_file() {
            if self.opts.strict {
                return Err(Error::Input(format!(
                    "{}: prediction PNG not found",
                    path.display()
                )));
            }
            out.missing.push(path.to_path_buf());
            return Ok(zeros());
        }
        match read_label_png(path) {
            Ok(p) if p.width == w && p.height == h => Ok(p),
            Ok(p) => {
                let msg = format!(
                    "{}: prediction is {}x{} but ground truth {} is {w}x{h}",
                    path.display(),
                    p.width,
                    p.height,
                    gt_path.display()
                );
                if self.opts.strict {
                    return Err(Error::Input(msg));
                }
                out.problems.push(format!("{msg}; scored as an empty mask"));
                Ok(zeros())
            }
            Err(e) => {
                if self.opts.strict {
                    return Err(e);
                }
                out.problems.push(format!("{e}; scored as an empty mask"));
                Ok(zeros())
            }
        }
    }

    fn gt_error(&self, e: Error, what: String, out: &mut VideoOut) -> Result<()> {
        if self.opts.strict {
            return Err(e);
        }
        out.unscored.push(format!("{what}: not scored: {e}"));
        Ok(())
    }

    fn video(&self, gt_root: &Path, pred_root: &Path, video: &str) -> Result<VideoOut> {
        let gt_dir = gt_root.join(video);
        let pred_dir = pred_root.join(video);
        let entries = sorted_entries(&gt_dir)?;
        let mut out = VideoOut::default();
        if entries.iter().all(|(n, _)| n.ends_with(".png")) {
            let frames: Vec<String> = entries.into_iter().map(|(n, _)| n).collect();
            self.davis_video(&gt_dir, &pred_dir, video, &frames, &mut out)?;
        } else {
            for (obj, is_dir) in entries {
                if !is_dir {
                    let msg = format!(
                        "{}: not an object folder, ignored",
                        gt_dir.join(&obj).display()
                    );
                    if self.opts.strict {
                        return Err(Error::Input(msg));
                    }
                    out.problems.push(msg);
                    continue;
                }
                self.sav_object(
                    &gt_dir.join(&obj),
                    &pred_dir.join(&obj),
                    video,
                    &obj,
                    &mut out,
                )?;
            }
        }
        Ok(out)
    }

    fn sav_object(
        &self,
        gt_dir: &Path,
        pred_dir: &Path,
        video: &str,
        obj: &str,
        out: &mut VideoOut,
    ) -> Result<()> {
        let mut frames = Vec::new();
        for (name, _) in sorted_entries(gt_dir)? {
            if name.ends_with(".png") {
                frames.push(name);
            } else {
                out.problems.push(format!(
                    "{}: not a PNG mask, ignored",
                    gt_dir.join(&name).display()
                ));
            }
        }
        let mut ev = SequenceEvaluator::new();
        for name in self.scored(&frames) {
            let gt_path = gt_dir.join(name);
            let gt = match read_label_png(&gt_path) {
                Ok(g) => g.foreground(),
                Err(e) => return self.gt_error(e, format!("{video}/{obj}"), out),
            };
            let pred = self
                .pred(&pred_dir.join(name), &gt_path, gt.width, gt.height, out)?
                .foreground();
            ev.feed_binary(&pred, &gt)?;
        }
        match ev.conclude().get(&1) {
            Some(s) => out.objects.push((ObjectKey::Dir(obj.to_string()), *s)),
            None if self.scored(&frames).is_empty() => out.unscored.push(format!(
                "{video}/{obj}: not scored: {} annotated frame(s), none left once the first and last are skipped",
                frames.len()
            )),
            None => out.unscored.push(format!(
                "{video}/{obj}: not scored: empty in the ground truth on every scored frame (the official evaluator stops with an assertion here)"
            )),
        }
        Ok(())
    }

    fn davis_video(
        &self,
        gt_dir: &Path,
        pred_dir: &Path,
        video: &str,
        frames: &[String],
        out: &mut VideoOut,
    ) -> Result<()> {
        let mut ev = SequenceEvaluator::new();
        for name in self.scored(frames) {
            let gt_path = gt_dir.join(name);
            let gt = match read_label_png(&gt_path) {
                Ok(g) => g,
                Err(e) => return self.gt_error(e, video.to_string(), out),
            };
            let pred = self.pred(&pred_dir.join(name), &gt_path, gt.width, gt.height, out)?;
            ev.feed_labels(&pred, &gt)?;
        }
        for (id, s) in ev.conclude() {
            out.objects.push((ObjectKey::Id(id), s));
        }
        Ok(())
    }
}

/// Score `pred_root` against `gt_root` (see the module doc). `gt_root` may also be an SA-V split
/// folder holding `Annotations_6fps/`.
pub fn evaluate_dirs(gt_root: &Path, pred_root: &Path, opts: &EvalOptions) -> Result<Report> {
    for (what, p) in [("ground-truth", gt_root), ("prediction", pred_root)] {
        if !p.is_dir() {
            return Err(Error::Input(format!(
                "{what} folder {} does not exist",
                p.display()
            )));
        }
    }
    let ann = gt_root.join("Annotations_6fps");
    let gt_root = if ann.is_dir() { ann.as_path() } else { gt_root };
    let gt_videos = video_dirs(gt_root)?;
    let pred_videos = video_dirs(pred_root)?;
    let missing: Vec<String> = gt_videos
        .iter()
        .filter(|v| !pred_videos.contains(v))
        .cloned()
        .collect();
    if opts.strict {
        let extra: Vec<&String> = pred_videos
            .iter()
            .filter(|v| !gt_videos.contains(v))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(Error::Input(format!(
                "videos in {} without predictions: {missing:?}; videos in {} not in the ground truth: {extra:?}",
                gt_root.display(),
                pred_root.display()
            )));
        }
    }
    let videos: Vec<String> = gt_videos
        .iter()
        .filter(|v| pred_videos.contains(v))
        .cloned()
        .collect();
    if videos.is_empty() {
        return Err(Error::Input(format!(
            "no video to evaluate: {} has {} video folder(s), {} has {} and none share a name",
            gt_root.display(),
            gt_videos.len(),
            pred_root.display(),
            pred_videos.len()
        )));
    }

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    }
    .min(videos.len())
    .max(1);
    let ctx = Ctx { opts };
    let results: Vec<Mutex<Option<Result<VideoOut>>>> =
        videos.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= videos.len() {
                    break;
                }
                let r = ctx.video(gt_root, pred_root, &videos[i]);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });

    let mut report = Report {
        sequences: videos.clone(),
        skip_first_and_last: opts.skip_first_and_last,
        videos_without_predictions: missing,
        ..Default::default()
    };
    for (video, slot) in videos.iter().zip(results) {
        let r = slot
            .into_inner()
            .map_err(|_| Error::Other(format!("evaluation of {video} panicked")))?
            .ok_or_else(|| Error::Other(format!("evaluation of {video} did not run")))?;
        let out = r?;
        for (object, score) in out.objects {
            report.objects.push(ObjectResult {
                sequence: video.clone(),
                object,
                score,
            });
        }
        report.missing_predictions.extend(out.missing);
        report.unscored.extend(out.unscored);
        report.problems.extend(out.problems);
    }
    Ok(report)
}
