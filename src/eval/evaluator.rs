//! Accumulating per-frame scores into per-object and global J&F, with the official SA-V
//! evaluator's rules:
//!
//! - An object is scored from the first frame where it appears in the ground truth *or* the
//!   prediction; earlier frames (both empty) are not counted. After that, frames where both are
//!   empty count as J = F = 1.
//! - Only objects present in the ground truth (on a scored frame) are reported.
//! - Per-object J and F are `np.mean(...) * 100`; J&F = (J + F) / 2.
//! - Global J and F are means over all objects of all videos pooled (no per-video averaging).
//!
//! [`ObjectScorer`] is the streaming form the benchmark feeds frame by frame; [`Report`] holds
//! the results and writes `results.csv` (the official format, byte for byte) and `results.json`
//! (full precision).

use super::j_and_f::{numpy_mean, score_frame, FrameScore};
use crate::data::masks::{LabelMap, Mask};
use crate::{Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The official `Evaluator` for one sequence of frames: a single SA-V object (binary masks,
/// object id 1) or a DAVIS-style video (object ids are the mask values).
#[derive(Default, Debug, Clone)]
pub struct SequenceEvaluator {
    objects_in_gt: BTreeSet<u16>,
    objects_in_masks: BTreeSet<u16>,
    j: BTreeMap<u16, Vec<f64>>,
    f: BTreeMap<u16, Vec<f64>>,
}

/// Final per-object numbers, in percent as the official output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectScore {
    pub j: f64,
    pub f: f64,
    /// Number of frames that entered the means.
    pub frames: usize,
}

impl ObjectScore {
    pub fn jf(&self) -> f64 {
        (self.j + self.f) / 2.0
    }
}

impl SequenceEvaluator {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, id: u16, s: FrameScore) {
        self.j.entry(id).or_default().push(s.j);
        self.f.entry(id).or_default().push(s.f);
    }

    /// Feed one frame of binary masks (SA-V: one object per PNG).
    pub fn feed_binary(&mut self, pred: &Mask, gt: &Mask) -> Result<()> {
        if !gt.is_empty() {
            self.objects_in_gt.insert(1);
        }
        if !pred.is_empty() {
            self.objects_in_masks.insert(1);
        }
        if self.objects_in_gt.contains(&1) || self.objects_in_masks.contains(&1) {
            let s = score_frame(pred, gt)?;
            self.push(1, s);
        }
        Ok(())
    }

    /// Feed one frame of multi-object label maps (DAVIS style).
    pub fn feed_labels(&mut self, pred: &LabelMap, gt: &LabelMap) -> Result<()> {
        if pred.width != gt.width || pred.height != gt.height {
            return Err(Error::Input(format!(
                "prediction is {}x{} but ground truth is {}x{}",
                pred.width, pred.height, gt.width, gt.height
            )));
        }
        self.objects_in_gt.extend(gt.ids());
        self.objects_in_masks.extend(pred.ids());
        let all: Vec<u16> = self
            .objects_in_gt
            .union(&self.objects_in_masks)
            .copied()
            .collect();
        for id in all {
            let s = score_frame(&pred.object(id), &gt.object(id))?;
            self.push(id, s);
        }
        Ok(())
    }

    /// Per-object results for the objects seen in the ground truth, ascending id.
    pub fn conclude(&self) -> BTreeMap<u16, ObjectScore> {
        self.objects_in_gt
            .iter()
            .map(|&id| {
                let j = self.j.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                let f = self.f.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                (
                    id,
                    ObjectScore {
                        j: numpy_mean(j) * 100.0,
                        f: numpy_mean(f) * 100.0,
                        frames: j.len(),
                    },
                )
            })
            .collect()
    }
}

/// Streaming scorer for one object of one video, for the benchmark: give it the object's
/// annotated frame indices up front, then feed every scored frame in increasing order as the
/// predictions come out.
#[derive(Debug, Clone)]
pub struct ObjectScorer {
    scored: Vec<usize>,
    next: usize,
    eval: SequenceEvaluator,
}

impl ObjectScorer {
    /// `annotated`: every frame index with a ground-truth PNG for this object (any order).
    /// With `skip_first_and_last` (the SA-V val/test rule) the first and last are not scored.
    pub fn new(annotated: &[usize], skip_first_and_last: bool) -> Self {
        let mut frames = annotated.to_vec();
        frames.sort_unstable();
        frames.dedup();
        let scored = if skip_first_and_last {
            if frames.len() <= 2 {
                Vec::new()
            } else {
                frames[1..frames.len() - 1].to_vec()
            }
        } else {
            frames
        };
        Self {
            scored,
            next: 0,
            eval: SequenceEvaluator::new(),
        }
    }

    /// The frames that must be fed, ascending.
    pub fn scored_frames(&self) -> &[usize] {
        &self.scored
    }

    pub fn is_scored(&self, frame: usize) -> bool {
        self.scored.binary_search(&frame).is_ok()
    }

    /// Feed the prediction and ground truth of `frame`. Frames that are not scored are ignored
    /// (returns false). Scored frames must come in increasing order, none left out.
    pub fn feed(&mut self, frame: usize, pred: &Mask, gt: &Mask) -> Result<bool> {
        if !self.is_scored(frame) {
            return Ok(false);
        }
        match self.scored.get(self.next) {
            Some(&want) if want == frame => {}
            Some(&want) => {
                return Err(Error::Other(format!(
                    "object scorer fed frame {frame} but frame {want} comes first"
                )))
            }
            None => {
                return Err(Error::Other(format!(
                    "object scorer fed frame {frame} twice"
                )))
            }
        }
        self.eval.feed_binary(pred, gt)?;
        self.next += 1;
        Ok(true)
    }

    /// The object's J and F (percent), `None` when the object never appears in the ground truth
    /// of a scored frame (the official evaluator cannot score such an object). Errors if a
    /// scored frame was never fed.
    pub fn finish(&self) -> Result<Option<ObjectScore>> {
        if let Some(&missing) = self.scored.get(self.next) {
            return Err(Error::Other(format!(
                "object scorer finished with frame {missing} (and {} more) never fed",
                self.scored.len() - self.next - 1
            )));
        }
        Ok(self.eval.conclude().get(&1).copied())
    }
}

/// How an object is named in results.csv: an SA-V object directory (`"000"`) or a DAVIS id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKey {
    Dir(String),
    Id(u16),
}

impl ObjectKey {
    /// The official `f"{object_idx:03}"`: ints are zero-padded on the left, strings padded
    /// with '0' on the right (Python's rule for the '0' flag on strings).
    pub fn csv_field(&self) -> String {
        match self {
            ObjectKey::Id(n) => format!("{n:03}"),
            ObjectKey::Dir(s) => {
                let mut s = s.clone();
                while s.chars().count() < 3 {
                    s.push('0');
                }
                s
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            ObjectKey::Id(n) => n.to_string(),
            ObjectKey::Dir(s) => s.clone(),
        }
    }
}

/// One reported object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectResult {
    pub sequence: String,
    pub object: ObjectKey,
    pub score: ObjectScore,
}

/// Everything one evaluation produced.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every evaluated sequence, in order (also those with no reportable object).
    pub sequences: Vec<String>,
    pub objects: Vec<ObjectResult>,
    pub skip_first_and_last: bool,
    /// Prediction PNGs that did not exist and were scored as empty masks.
    pub missing_predictions: Vec<PathBuf>,
    /// Ground-truth videos with no prediction folder (not evaluated, as the official
    /// non-strict mode).
    pub videos_without_predictions: Vec<String>,
    /// Objects that could not be scored, with the reason.
    pub unscored: Vec<String>,
    /// Other data problems (unreadable or mis-sized predictions scored as empty, stray files).
    pub problems: Vec<String>,
}

#[derive(Serialize)]
struct JsonObject<'a> {
    sequence: &'a str,
    obj: String,
    #[serde(rename = "J&F")]
    jf: f64,
    #[serde(rename = "J")]
    j: f64,
    #[serde(rename = "F")]
    f: f64,
    frames: usize,
}

impl Report {
    /// Global (J&F, J, F) over all objects pooled; `None` when there is no object.
    pub fn global(&self) -> Option<(f64, f64, f64)> {
        if self.objects.is_empty() {
            return None;
        }
        let j: Vec<f64> = self.objects.iter().map(|o| o.score.j).collect();
        let f: Vec<f64> = self.objects.iter().map(|o| o.score.f).collect();
        let (gj, gf) = (numpy_mean(&j), numpy_mean(&f));
        Some(((gj + gf) / 2.0, gj, gf))
    }

    /// results.csv exactly as the official evaluator writes it.
    pub fn results_csv(&self) -> Result<String> {
        let (gjf, gj, gf) = self
            .global()
            .ok_or_else(|| Error::Input("no object could be scored".into()))?;
        let ml = self
            .sequences
            .iter()
            .map(|s| s.chars().count())
            .chain(std::iter::once("Global score".len()))
            .max()
            .unwrap_or(12);
        let mut out = format!(
            "{:<ml$},{:>3}, {:>4}, {:>4}, {:>4}\n",
            "sequence", "obj", "J&F", "J", "F"
        );
        out += &format!(
            "{:<ml$},{:>3}, {gjf:.1}, {gj:.1}, {gf:.1}\n",
            "Global score", ""
        );
        for o in &self.objects {
            let (j, f) = (o.score.j, o.score.f);
            let jf = (j + f) / 2.0;
            out += &format!(
                "{:<ml$},{}, {jf:>4.1}, {j:>4.1}, {f:>4.1}\n",
                o.sequence,
                o.object.csv_field()
            );
        }
        Ok(out)
    }

    /// The full-precision results.
    pub fn to_json(&self) -> serde_json::Value {
        let global = self
            .global()
            .map(|(jf, j, f)| serde_json::json!({"J&F": jf, "J": j, "F": f}));
        let objects: Vec<JsonObject> = self
            .objects
            .iter()
            .map(|o| JsonObject {
                sequence: &o.sequence,
                obj: o.object.name(),
                jf: o.score.jf(),
                j: o.score.j,
                f: o.score.f,
                frames: o.score.frames,
            })
            .collect();
        serde_json::json!({
            "global": global,
            "objects": objects,
            "skip_first_and_last": self.skip_first_and_last,
            "missing_predictions": self.missing_predictions,
            "videos_without_predictions": self.videos_without_predictions,
            "unscored_objects": self.unscored,
            "problems": self.problems,
        })
    }

    /// Write `results.csv` and `results.json` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let csv = dir.join("results.csv");
        std::fs::write(&csv, self.results_csv()?).map_err(|e| Error::io(&csv, e))?;
        let json = dir.join("results.json");
        let text = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| Error::Other(format!("results.json: {e}")))?;
        std::fs::write(&json, text + "\n").map_err(|e| Error::io(&json, e))?;
        Ok((csv, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(w: usize, h: usize, x0: usize, y0: usize, s: usize) -> Mask {
        let mut m = Mask::empty(w, h);
        for y in y0..(y0 + s).min(h) {
            for x in x0..(x0 + s).min(w) {
                m.data[y * w + x] = true;
            }
        }
        m
    }

    #[test]
    fn first_appearance_rule() {
        let e = Mask::empty(20, 20);
        let a = square(20, 20, 5, 5, 6);
        let mut s = ObjectScorer::new(&[0, 4, 8, 12, 16, 20], true);
        assert_eq!(s.scored_frames(), &[4, 8, 12, 16]);
        assert!(!s.feed(0, &a, &a).unwrap());
        s.feed(4, &e, &e).unwrap(); // before first appearance: not counted
        s.feed(8, &e, &a).unwrap(); // missed: J = F = 0
        s.feed(12, &a, &a).unwrap(); // perfect
        assert!(s.finish().is_err(), "frame 16 not fed yet");
        s.feed(16, &e, &e).unwrap(); // both empty after appearance: 1
        let r = s.finish().unwrap().unwrap();
        assert_eq!(r.frames, 3);
        assert!((r.j - 200.0 / 3.0).abs() < 1e-12);
        assert!(s.feed(16, &e, &e).is_err());
    }

    #[test]
    fn out_of_order_feed_is_an_error() {
        let e = Mask::empty(4, 4);
        let mut s = ObjectScorer::new(&[0, 1, 2], false);
        assert!(s.feed(1, &e, &e).is_err());
    }

    #[test]
    fn never_in_gt_is_none() {
        let e = Mask::empty(10, 10);
        let a = square(10, 10, 1, 1, 3);
        let mut s = ObjectScorer::new(&[0, 1, 2], false);
        for f in 0..3 {
            s.feed(f, &a, &e).unwrap();
        }
        assert_eq!(s.finish().unwrap(), None);
    }

    #[test]
    fn csv_format() {
        let mk = |seq: &str, obj: ObjectKey, j: f64, f: f64| ObjectResult {
            sequence: seq.into(),
            object: obj,
            score: ObjectScore { j, f, frames: 1 },
        };
        let r = Report {
            sequences: vec!["a".into(), "longer_video_name".into()],
            objects: vec![
                mk("a", ObjectKey::Dir("000".into()), 100.0, 100.0),
                mk("longer_video_name", ObjectKey::Dir("1".into()), 5.25, 0.0),
                mk("longer_video_name", ObjectKey::Id(2), 50.0, 25.0),
            ],
            ..Default::default()
        };
        let csv = r.results_csv().unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "sequence         ,obj,  J&F,    J,    F");
        assert_eq!(lines[1], "Global score     ,   , 46.7, 51.8, 41.7");
        assert_eq!(lines[2], "a                ,000, 100.0, 100.0, 100.0");
        assert_eq!(lines[3], "longer_video_name,100,  2.6,  5.2,  0.0");
        assert_eq!(lines[4], "longer_video_name,002, 37.5, 50.0, 25.0");
    }
}
