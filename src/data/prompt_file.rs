//! Prompt files, format `vosbench-prompts-1` (`vosbench track --prompts FILE`; the schema of
//! the multi-object fixtures' `prompts.json`, documented in tests/reference/FIXTURES.md):
//!
//! ```text
//! {"format": "vosbench-prompts-1",            (optional)
//!  "objects": [{"id": 1, "prompts": [STEP, ...]}, ...]}
//! STEP = {"frame": F, "mask": "PATH.png"}
//!      | {"frame": F, "points": [[x, y], ...], "labels": [1 | 0, ...]}
//!      | {"frame": F, "box": [x0, y0, x1, y1]}      (optionally with "points" / "labels")
//! ```
//!
//! Ids are >= 1 and unique; frames are 0-based indices into the video's frames in order; points
//! and boxes are video pixels; a mask is a PNG of the video's size, relative to the file's folder,
//! foreground where its value is > 0. A file may instead hold several named `runs`, each with its
//! `objects` (the fixtures' layout; pick one by name). Everything that can be checked without the
//! video is checked here, with one-line errors naming the file; what needs the video (frame range,
//! mask size) is checked by whoever opens it, before tracking starts.

use crate::config::PostProcessing;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The format name a file may state.
pub const FORMAT: &str = "vosbench-prompts-1";

/// One prompt step of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptStep {
    /// Index into the video's frames.
    pub frame: usize,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// A mask PNG (path resolved against the prompt file's folder).
    Mask(PathBuf),
    /// Clicks `(x, y, label)` and/or a box `[x0, y0, x1, y1]`, video pixels.
    Clicks {
        points: Vec<(f32, f32, i32)>,
        bbox: Option<[f32; 4]>,
    },
}

/// The steps of one object, in the order they apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPrompts {
    pub id: u32,
    pub steps: Vec<PromptStep>,
}

/// One named run of a file with `runs` (the fixtures' layout).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRun {
    /// `per_object` (the official run used one session per object) or `shared`.
    pub sessions: String,
    /// Which fixture families hold the run.
    pub families: Vec<String>,
    /// The post-processing the reference ran with (default on).
    pub postprocessing: PostProcessing,
    pub objects: Vec<ObjectPrompts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    format: Option<String>,
    video: Option<String>,
    frames: Option<String>,
    width: Option<usize>,
    height: Option<usize>,
    num_frames: Option<usize>,
    objects: Option<Vec<RawObject>>,
    runs: Option<BTreeMap<String, RawRun>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    sessions: String,
    families: Vec<String>,
    postprocessing: Option<PostProcessing>,
    objects: Vec<RawObject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    id: i64,
    prompts: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    frame: i64,
    mask: Option<PathBuf>,
    points: Option<Vec<[f32; 2]>>,
    labels: Option<Vec<i64>>,
    #[serde(rename = "box")]
    bbox: Option<[f32; 4]>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Input(format!("prompts file {}: {what}", path.display()))
}

fn read_raw(path: &Path) -> Result<RawFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let raw: RawFile = serde_json::from_str(&text).map_err(|e| bad(path, e))?;
    if let Some(f) = &raw.format {
        if f != FORMAT {
            return Err(bad(path, format!("format '{f}' is not {FORMAT}")));
        }
    }
    // informational fields; the video itself is the authority
    let _ = (
        &raw.video,
        &raw.frames,
        raw.width,
        raw.height,
        raw.num_frames,
    );
    Ok(raw)
}

/// The objects of a prompt file with top-level `objects` (mask paths resolved against the file's
/// folder). A file with `runs` needs `run`: the run's objects.
pub fn read_prompts_file(path: &Path, run: Option<&str>) -> Result<Vec<ObjectPrompts>> {
    let raw = read_raw(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    match (raw.objects, raw.runs, run) {
        (Some(objects), None, None) => objects_from(path, base, objects),
        (None, Some(mut runs), Some(name)) => {
            let names: Vec<String> = runs.keys().cloned().collect();
            match runs.remove(name) {
                Some(r) => objects_from(path, base, r.objects),
                None => Err(bad(
                    path,
                    format!("no run '{name}' (runs: {})", names.join(", ")),
                )),
            }
        }
        (None, Some(runs), None) => Err(bad(
            path,
            format!(
                "it holds several runs ({}); pick one (--prompts-run NAME)",
                runs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        (Some(_), None, Some(name)) => {
            Err(bad(path, format!("it has no runs, so no run '{name}'")))
        }
        (Some(_), Some(_), _) => Err(bad(path, "give either \"objects\" or \"runs\", not both")),
        (None, None, _) => Err(bad(path, "no \"objects\"")),
    }
}

/// Every run of a prompt file with `runs` (the fixtures' `prompts.json`), by name.
pub fn read_prompt_runs(path: &Path) -> Result<BTreeMap<String, PromptRun>> {
    let raw = read_raw(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let Some(runs) = raw.runs else {
        return Err(bad(path, "no \"runs\""));
    };
    runs.into_iter()
        .map(|(name, r)| {
            let objects = objects_from(path, base, r.objects)
                .map_err(|e| Error::Input(format!("{e} (run {name})")))?;
            Ok((
                name,
                PromptRun {
                    sessions: r.sessions,
                    families: r.families,
                    postprocessing: r.postprocessing.unwrap_or_default(),
                    objects,
                },
            ))
        })
        .collect()
}

/// Objects given in another way (e.g. `--object` flags), checked as a file's are; `origin`
/// names them in errors, mask paths are taken as they are.
pub fn check_objects(origin: &str, objects: &[ObjectPrompts]) -> Result<()> {
    let mut seen = BTreeSet::new();
    if objects.is_empty() {
        return Err(Error::Input(format!("{origin}: no object")));
    }
    for o in objects {
        if o.id == 0 {
            return Err(Error::Input(format!(
                "{origin}: object id 0 is not allowed (ids start at 1)"
            )));
        }
        if !seen.insert(o.id) {
            return Err(Error::Input(format!(
                "{origin}: object id {} is given twice",
                o.id
            )));
        }
        if o.steps.is_empty() {
            return Err(Error::Input(format!(
                "{origin}: object {} has no prompt",
                o.id
            )));
        }
        for s in &o.steps {
            if let StepKind::Clicks { points, bbox } = &s.kind {
                if points.is_empty() && bbox.is_none() {
                    return Err(Error::Input(format!(
                        "{origin}: object {} has a step on frame {} without points or box",
                        o.id, s.frame
                    )));
                }
                if let Some(&(_, _, l)) = points.iter().find(|p| p.2 != 0 && p.2 != 1) {
                    return Err(Error::Input(format!(
                        "{origin}: object {}: label {l} must be 0 (negative) or 1 (positive)",
                        o.id
                    )));
                }
            }
        }
    }
    Ok(())
}

fn objects_from(path: &Path, base: &Path, raw: Vec<RawObject>) -> Result<Vec<ObjectPrompts>> {
    let mut out = Vec::with_capacity(raw.len());
    for o in raw {
        let id = u32::try_from(o.id).map_err(|_| {
            bad(
                path,
                format!("object id {} is not a positive integer", o.id),
            )
        })?;
        let mut steps = Vec::with_capacity(o.prompts.len());
        for s in o.prompts {
            let frame = usize::try_from(s.frame)
                .map_err(|_| bad(path, format!("object {id}: frame {} is negative", s.frame)))?;
            let kind = match (s.mask, s.points, s.labels, s.bbox) {
                (Some(m), None, None, None) => StepKind::Mask(base.join(m)),
                (Some(_), ..) => {
                    return Err(bad(
                        path,
                        format!(
                            "object {id}, frame {frame}: a mask step has no points, labels or box"
                        ),
                    ))
                }
                (None, points, labels, bbox) => {
                    let points = points.unwrap_or_default();
                    let labels = labels.unwrap_or_default();
                    if points.len() != labels.len() {
                        return Err(bad(
                            path,
                            format!(
                                "object {id}, frame {frame}: {} points but {} labels",
                                points.len(),
                                labels.len()
                            ),
                        ));
                    }
                    if let Some(l) = labels.iter().find(|&&l| l != 0 && l != 1) {
                        return Err(bad(
                            path,
                            format!(
                                "object {id}, frame {frame}: label {l} must be 0 (negative) or \
                                 1 (positive)"
                            ),
                        ));
                    }
                    let points = points
                        .iter()
                        .zip(&labels)
                        .map(|(p, &l)| (p[0], p[1], l as i32))
                        .collect();
                    StepKind::Clicks { points, bbox }
                }
            };
            steps.push(PromptStep { frame, kind });
        }
        out.push(ObjectPrompts { id, steps });
    }
    check_objects(&format!("prompts file {}", path.display()), &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("p.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_objects_and_resolves_mask_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"{"format": "vosbench-prompts-1", "objects": [
                {"id": 2, "prompts": [{"frame": 0, "mask": "m/2.png"},
                                      {"frame": 0, "points": [[1.5, 2]], "labels": [0]}]},
                {"id": 5, "prompts": [{"frame": 3, "box": [1, 2, 10, 20]}]}]}"#,
        );
        let objs = read_prompts_file(&p, None).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].id, 2);
        assert_eq!(
            objs[0].steps[0],
            PromptStep {
                frame: 0,
                kind: StepKind::Mask(dir.path().join("m/2.png"))
            }
        );
        assert_eq!(
            objs[0].steps[1].kind,
            StepKind::Clicks {
                points: vec![(1.5, 2.0, 0)],
                bbox: None
            }
        );
        assert_eq!(
            objs[1].steps[0],
            PromptStep {
                frame: 3,
                kind: StepKind::Clicks {
                    points: vec![],
                    bbox: Some([1.0, 2.0, 10.0, 20.0])
                }
            }
        );
    }

    #[test]
    fn the_fixture_prompts_have_every_run() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multi_object/prompts.json");
        let runs = read_prompt_runs(&p).unwrap();
        for name in ["masks", "together", "late_join", "mixed"] {
            assert!(runs.contains_key(name), "{name}");
        }
        let masks = &runs["masks"];
        assert_eq!(masks.sessions, "per_object");
        assert_eq!(masks.postprocessing, PostProcessing::On);
        assert_eq!(
            masks
                .objects
                .iter()
                .map(|o| (o.id, o.steps[0].frame))
                .collect::<Vec<_>>(),
            [(1, 0), (2, 0), (3, 6)]
        );
        let objs = read_prompts_file(&p, Some("mixed")).unwrap();
        assert_eq!(objs[0].steps.len(), 2);
        let err = read_prompts_file(&p, None).unwrap_err().to_string();
        assert!(err.contains("pick one"), "{err}");
        let err = read_prompts_file(&p, Some("nope")).unwrap_err().to_string();
        assert!(err.contains("no run 'nope'"), "{err}");
    }

    #[test]
    fn bad_files_are_one_line_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            (
                r#"{"objects": [{"id": 1, "prompts": [{"frame": 0, "mask": "a.png"}]},
                                {"id": 1, "prompts": [{"frame": 0, "mask": "b.png"}]}]}"#,
                "object id 1 is given twice",
            ),
            (
                r#"{"objects": [{"id": 0, "prompts": [{"frame": 0, "mask": "a.png"}]}]}"#,
                "id 0",
            ),
            (
                r#"{"objects": [{"id": -3, "prompts": [{"frame": 0, "mask": "a.png"}]}]}"#,
                "-3",
            ),
            (
                r#"{"objects": [{"id": 1, "prompts": []}]}"#,
                "has no prompt",
            ),
            (
                r#"{"objects": [{"id": 1, "prompts": [{"frame": -1, "mask": "a.png"}]}]}"#,
                "negative",
            ),
            (
                r#"{"objects": [{"id": 1, "prompts": [{"frame": 0, "points": [[1, 2]], "labels": []}]}]}"#,
                "1 points but 0 labels",
            ),
            (
                r#"{"objects": [{"id": 1, "prompts": [{"frame": 0, "points": [[1, 2]], "labels": [3]}]}]}"#,
                "label 3 must be 0",
            ),
            (
                r#"{"objects": [{"id": 1, "prompts": [{"frame": 0, "mask": "a.png", "box": [0, 0, 1, 1]}]}]}"#,
                "a mask step has no points",
            ),
            (
                r#"{"objects": [{"id": 1, "prompts": [{"frame": 0}]}]}"#,
                "without points or box",
            ),
            (r#"{"objects": [{"id": 1, "prompt": []}]}"#, "unknown field"),
            (
                r#"{"format": "other", "objects": []}"#,
                "is not vosbench-prompts-1",
            ),
            (r#"{"objects": []}"#, "no object"),
            ("not json", "prompts file"),
        ] {
            let p = write(dir.path(), text);
            let e = read_prompts_file(&p, None).unwrap_err();
            assert!(matches!(e, Error::Input(_)), "{text}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "{text}: '{needle}' not in '{msg}'");
            assert_eq!(msg.lines().count(), 1, "{msg}");
        }
    }
}
