//! Prompts derived from the ground truth, deterministically:
//!
//! - the prompt frame is the object's first annotated frame whose mask is non-empty (the
//!   original harness took the first annotated frame and dropped the object when it was
//!   empty; SA-V objects that appear late would be lost);
//! - the click ([`ClickMode::Interior`], default) is the mask pixel farthest from the mask's
//!   boundary (exact Euclidean distance to the nearest background pixel, outside the image
//!   counting as background), ties broken by the first pixel in raster order, so the click is
//!   always on the object. [`ClickMode::Centroid`] reproduces the original harness: the
//!   truncated centroid of the first 4-connected component in raster order (scipy's label 1),
//!   which can fall outside a non-convex mask;
//! - the box is the tight inclusive box `[x0, y0, x1, y1]` of the mask.
//!
//! Coordinates are video pixels (x right, y down). Objects with no non-empty annotation are
//! skipped and reported; an unreadable mask is reported and the next annotation is tried.

use super::edt::squared_edt;
use super::masks::Mask;
use super::sav::{DataIssue, ObjectTrack, Split, Video};

/// How the click point is chosen.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ClickMode {
    /// The mask pixel farthest from the mask boundary.
    #[default]
    Interior,
    /// The original harness's centroid of the first connected component.
    Centroid,
}

/// A prompt for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GtPrompt {
    /// Index into the video's frames.
    pub frame: usize,
    /// Click (x, y), a positive point.
    pub point: (usize, usize),
    /// Tight inclusive box [x0, y0, x1, y1].
    pub bbox: [usize; 4],
    /// Foreground pixels of the prompt mask.
    pub area: usize,
}

/// The pixel farthest from the background (outside the image is background); `None` if empty.
pub fn interior_point(mask: &Mask) -> Option<(usize, usize)> {
    let (w, h) = (mask.width, mask.height);
    let (pw, ph) = (w + 2, h + 2);
    let mut background = vec![true; pw * ph];
    for y in 0..h {
        for x in 0..w {
            background[(y + 1) * pw + x + 1] = !mask.data[y * w + x];
        }
    }
    let d = squared_edt(&background, pw, ph);
    let mut best: Option<((usize, usize), i64)> = None;
    for y in 0..h {
        for x in 0..w {
            if mask.data[y * w + x] {
                let v = d[(y + 1) * pw + x + 1];
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some(((x, y), v));
                }
            }
        }
    }
    best.map(|(p, _)| p)
}

/// The original harness's click: `int(mean)` of the x and y coordinates of the first
/// 4-connected component in raster order; `None` if empty.
pub fn centroid_point(mask: &Mask) -> Option<(usize, usize)> {
    let (w, h) = (mask.width, mask.height);
    let start = mask.data.iter().position(|&b| b)?;
    let mut seen = vec![false; w * h];
    let mut stack = vec![start];
    seen[start] = true;
    let (mut sx, mut sy, mut n) = (0u64, 0u64, 0u64);
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        sx += x as u64;
        sy += y as u64;
        n += 1;
        let mut visit = |j: usize| {
            if mask.data[j] && !seen[j] {
                seen[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < w {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - w);
        }
        if y + 1 < h {
            visit(i + w);
        }
    }
    // Means of non-negative integers: truncation equals Python's int() of the float mean for
    // any image size that fits memory.
    Some((
        (sx as f64 / n as f64) as usize,
        (sy as f64 / n as f64) as usize,
    ))
}

/// Click and box of a mask; `None` if empty.
pub fn prompt_from_mask(mask: &Mask, mode: ClickMode) -> Option<((usize, usize), [usize; 4])> {
    let bbox = mask.bbox()?;
    let point = match mode {
        ClickMode::Interior => interior_point(mask)?,
        ClickMode::Centroid => centroid_point(mask)?,
    };
    Some((point, bbox))
}

/// The prompt of one object, or `None` (with the reason in `issues`) when no annotation is a
/// usable non-empty mask.
pub fn object_prompt(
    video: &Video,
    obj: &ObjectTrack,
    mode: ClickMode,
    issues: &mut Vec<DataIssue>,
) -> Option<GtPrompt> {
    for ann in &obj.annotations {
        match obj.load_mask(ann) {
            Ok(m) => {
                if let Some((point, bbox)) = prompt_from_mask(&m, mode) {
                    return Some(GtPrompt {
                        frame: ann.frame,
                        point,
                        bbox,
                        area: m.area(),
                    });
                }
            }
            Err(e) => issues.push(DataIssue {
                path: ann.path.clone(),
                message: format!(
                    "video {} object {}: annotation unreadable ({e}); the prompt moves to a later annotation",
                    video.name, obj.id
                ),
            }),
        }
    }
    let path = obj
        .annotations
        .first()
        .and_then(|a| a.path.parent())
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    issues.push(DataIssue {
        path,
        message: format!(
            "video {} object {}: no non-empty annotation; object skipped",
            video.name, obj.id
        ),
    });
    None
}

/// Prompts for every object of a split, in video then object order: (video index, object
/// index, prompt). Skipped objects are reported in `issues`.
pub fn split_prompts(
    split: &Split,
    mode: ClickMode,
    issues: &mut Vec<DataIssue>,
) -> Vec<(usize, usize, GtPrompt)> {
    let mut out = Vec::new();
    for (vi, v) in split.videos.iter().enumerate() {
        for (oi, o) in v.objects.iter().enumerate() {
            if let Some(p) = object_prompt(v, o, mode, issues) {
                out.push((vi, oi, p));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_rows(rows: &[&str]) -> Mask {
        let (w, h) = (rows[0].len(), rows.len());
        let data = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        Mask {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn interior_point_is_inside_and_deepest() {
        // A U shape: its centroid falls in the gap.
        let m = from_rows(&[
            "#####...#####",
            "#####...#####",
            "#####...#####",
            "#####...#####",
            "#############",
            "#############",
            ".............",
        ]);
        let c = centroid_point(&m).unwrap();
        assert!(!m.get(c.0, c.1), "the centroid {c:?} of a U is outside it");
        let p = interior_point(&m).unwrap();
        assert!(m.get(p.0, p.1));
        assert_eq!(p, (2, 2));
        assert_eq!(
            prompt_from_mask(&m, ClickMode::Interior).unwrap().1,
            [0, 0, 12, 5]
        );
        assert_eq!(
            prompt_from_mask(&Mask::empty(3, 3), ClickMode::Interior),
            None
        );
    }

    #[test]
    fn centroid_uses_first_component() {
        let m = from_rows(&["##....", "##....", "....##", "....##", "....##"]);
        // First component (raster order): the 2x2 block at the top left.
        assert_eq!(centroid_point(&m), Some((0, 0)));
        // scipy.ndimage.label numbers this mask's components 1 (top right), 2, 3; the original
        // harness's click is the centroid of label 1: [int(4.5), int(0.5)] = [4, 0].
        let three = from_rows(&["....##", "##..##", "##....", "......", ".#####"]);
        assert_eq!(centroid_point(&three), Some((4, 0)));
        let single = from_rows(&["...", ".##", ".##"]);
        // mean x = 1.5 -> 1, mean y = 1.5 -> 1.
        assert_eq!(centroid_point(&single), Some((1, 1)));
    }

    #[test]
    fn late_object_prompt_frame_is_first_non_empty() {
        use crate::data::sav::{Split, SplitOptions};
        use crate::data::synth::{write_split, SynthOptions};
        let d = tempfile::tempdir().unwrap();
        write_split(
            d.path(),
            &SynthOptions {
                videos: 1,
                frames: 24,
                width: 96,
                height: 64,
                seed: 5,
                objects: 3,
            },
        )
        .unwrap();
        let split = Split::open(d.path(), &SplitOptions::default()).unwrap();
        let mut issues = Vec::new();
        let prompts = split_prompts(&split, ClickMode::Interior, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        let v = &split.videos[0];
        assert_eq!(prompts.len(), v.objects.len());
        for (_, oi, p) in &prompts {
            let o = &v.objects[*oi];
            let ann = o.annotations.iter().find(|a| a.frame == p.frame).unwrap();
            let m = o.load_mask(ann).unwrap();
            assert!(m.get(p.point.0, p.point.1));
            for a in o.annotations.iter().filter(|a| a.frame < p.frame) {
                assert!(o.load_mask(a).unwrap().is_empty());
            }
        }
        // The synthetic object 1 appears late.
        assert!(prompts.iter().any(|(_, _, p)| p.frame > 0));
    }
}
