//! Reading a video object segmentation split: SA-V, DAVIS 2017 and MOSE layouts.
//!
//! - SA-V: `JPEGImages_24fps/<video>/<frame:05>.jpg` and
//!   `Annotations_6fps/<video>/<obj:03>/<frame:05>.png` (one binary mask per object and
//!   annotated frame, `> 0` is the object), optionally `<split_name>.txt` listing the videos.
//! - DAVIS 2017: `JPEGImages/480p/<video>/*.jpg` and `Annotations/480p/<video>/<frame>.png`,
//!   one palette PNG per frame whose indices are object ids. MOSE: the same without `480p/`.
//!
//! Which annotation style a video uses is decided per video, like the official evaluator: a
//! folder of PNGs is DAVIS-style, a folder of folders is SA-V-style.
//!
//! Broken data never stops the rest: a missing or unreadable folder, a frame that is not named
//! by an integer, an unreadable frame or mask, a mask whose size differs from the frames, an
//! annotation for a frame that does not exist: each becomes a [`DataIssue`] naming the file, and
//! the affected video, object or annotation is left out.

use super::masks::{png_size, read_label_png, Mask};
use crate::{Error, Result};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in the data; the named item was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataIssue {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for DataIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// An error's text on one line (a decoder's message may end in a line break).
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn issue(path: impl Into<PathBuf>, message: impl Into<String>) -> DataIssue {
    DataIssue {
        path: path.into(),
        message: message.into(),
    }
}

/// Where an object's mask is in an annotation PNG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskKind {
    /// SA-V: the whole PNG is the object (`> 0`).
    Binary,
    /// DAVIS-style: the pixels equal to this palette index.
    Label(u16),
}

/// One annotated frame of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// Index into [`Video::frames`].
    pub frame: usize,
    pub path: PathBuf,
}

/// One object (masklet) of a video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectTrack {
    /// The SA-V object folder name (`"000"`), or the DAVIS object id as text.
    pub id: String,
    pub kind: MaskKind,
    /// Annotated frames, ascending.
    pub annotations: Vec<Annotation>,
}

impl ObjectTrack {
    /// The annotated frame indices, ascending.
    pub fn annotated_frames(&self) -> Vec<usize> {
        self.annotations.iter().map(|a| a.frame).collect()
    }

    /// The ground-truth mask of one annotation.
    pub fn load_mask(&self, ann: &Annotation) -> Result<Mask> {
        let labels = read_label_png(&ann.path)?;
        Ok(match self.kind {
            MaskKind::Binary => labels.foreground(),
            MaskKind::Label(id) => labels.object(id),
        })
    }
}

/// One video of a split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Video {
    pub name: String,
    /// Frame files in order (sorted by the integer value of their names).
    pub frames: Vec<PathBuf>,
    /// The integer in each frame's name (SA-V: the 24 fps frame number).
    pub frame_numbers: Vec<u64>,
    pub width: usize,
    pub height: usize,
    pub objects: Vec<ObjectTrack>,
}

/// Split layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Sav,
    Davis2017,
    Mose,
}

#[derive(Clone, Debug, Default)]
pub struct SplitOptions {
    /// Read `<root>/<split_name>.txt` for the video list (e.g. `sav_val`); a name whose list
    /// does not exist is an error. Without it every video folder is used, sorted.
    pub split_name: Option<String>,
    /// Read every frame's header (slower on big splits) to report unreadable or mis-sized frames.
    pub check_frames: bool,
}

/// A split: its videos and the problems found while reading it.
#[derive(Clone, Debug)]
pub struct Split {
    pub root: PathBuf,
    pub layout: Layout,
    pub frames_root: PathBuf,
    pub annotations_root: PathBuf,
    pub videos: Vec<Video>,
    pub issues: Vec<DataIssue>,
}

/// The integer value of a file stem, if it is one.
fn stem_number(p: &Path) -> Option<u64> {
    p.file_stem()?.to_str()?.parse().ok()
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        out.push(e.map_err(|e| Error::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

impl Split {
    /// Open the split at `root` (see the module doc for the layouts).
    pub fn open(root: &Path, opts: &SplitOptions) -> Result<Split> {
        if !root.is_dir() {
            return Err(Error::Input(format!(
                "split folder {} does not exist",
                root.display()
            )));
        }
        let candidates = [
            (
                Layout::Sav,
                root.join("JPEGImages_24fps"),
                root.join("Annotations_6fps"),
            ),
            (
                Layout::Davis2017,
                root.join("JPEGImages/480p"),
                root.join("Annotations/480p"),
            ),
            (
                Layout::Mose,
                root.join("JPEGImages"),
                root.join("Annotations"),
            ),
        ];
        let (layout, frames_root, annotations_root) = candidates
            .into_iter()
            .find(|(_, f, a)| f.is_dir() && a.is_dir())
            .ok_or_else(|| {
                Error::Input(format!(
                    "{}: not a split: expected JPEGImages_24fps/ and Annotations_6fps/ (SA-V), \
                     JPEGImages/480p/ and Annotations/480p/ (DAVIS 2017) or JPEGImages/ and Annotations/ (MOSE)",
                    root.display()
                ))
            })?;
        let mut issues = Vec::new();
        let names = Self::video_names(root, &frames_root, opts)?;
        let mut videos = Vec::new();
        for name in names {
            if let Some(v) = read_video(&frames_root, &annotations_root, &name, opts, &mut issues) {
                videos.push(v);
            }
        }
        Ok(Split {
            root: root.to_path_buf(),
            layout,
            frames_root,
            annotations_root,
            videos,
            issues,
        })
    }

    fn video_names(root: &Path, frames_root: &Path, opts: &SplitOptions) -> Result<Vec<String>> {
        if let Some(split) = &opts.split_name {
            let list = root.join(format!("{split}.txt"));
            if list.is_file() {
                let text = std::fs::read_to_string(&list).map_err(|e| Error::io(&list, e))?;
                return Ok(text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect());
            }
            // A named list that is not there is a mistake (a typo would otherwise run every
            // video of the split).
            let lists: Vec<String> = list_dir(root)?
                .into_iter()
                .filter(|p| p.is_file() && has_ext(p, &["txt"]))
                .filter_map(|p| p.file_stem().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            return Err(Error::Input(format!(
                "split list {} not found (--split-name {split}); lists in {}: {}",
                list.display(),
                root.display(),
                if lists.is_empty() {
                    "none".to_string()
                } else {
                    lists.join(", ")
                }
            )));
        }
        Ok(list_dir(frames_root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
}

fn read_video(
    frames_root: &Path,
    ann_root: &Path,
    name: &str,
    opts: &SplitOptions,
    issues: &mut Vec<DataIssue>,
) -> Option<Video> {
    let fdir = frames_root.join(name);
    let entries = match list_dir(&fdir) {
        Ok(e) => e,
        Err(e) => {
            issues.push(issue(
                &fdir,
                format!("video frame folder unreadable ({e}); video skipped"),
            ));
            return None;
        }
    };
    let mut frames: Vec<(u64, PathBuf)> = Vec::new();
    for p in entries.into_iter().filter(|p| has_ext(p, &["jpg", "jpeg"])) {
        match stem_number(&p) {
            Some(n) => frames.push((n, p)),
            None => issues.push(issue(&p, "frame not named by an integer; ignored")),
        }
    }
    frames.sort();
    if frames.is_empty() {
        issues.push(issue(&fdir, "no JPEG frames; video skipped"));
        return None;
    }
    let (width, height) = match image::image_dimensions(&frames[0].1) {
        Ok((w, h)) => (w as usize, h as usize),
        Err(e) => {
            // The first frame gives the video's size, so the whole video goes with it.
            issues.push(issue(
                &frames[0].1,
                format!(
                    "video {name}: its first frame, which gives the video's size, is unreadable ({}); video left out",
                    one_line(e)
                ),
            ));
            return None;
        }
    };
    if opts.check_frames {
        for (_, p) in &frames[1..] {
            match image::image_dimensions(p) {
                Ok((w, h)) if (w as usize, h as usize) == (width, height) => {}
                Ok((w, h)) => issues.push(issue(
                    p,
                    format!("frame is {w}x{h}, the video is {width}x{height}"),
                )),
                Err(e) => issues.push(issue(p, format!("unreadable frame ({})", one_line(e)))),
            }
        }
    }
    let by_number: HashMap<u64, usize> = frames
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    let adir = ann_root.join(name);
    let objects = match list_dir(&adir) {
        Ok(entries) if entries.iter().any(|p| p.is_dir()) => {
            sav_objects(name, &entries, &by_number, (width, height), issues)
        }
        Ok(entries) => davis_objects(&entries, &by_number, (width, height), issues),
        Err(e) => {
            issues.push(issue(
                &adir,
                format!("annotation folder unreadable ({e}); video has no objects"),
            ));
            Vec::new()
        }
    };
    let (frame_numbers, frames) = frames.into_iter().unzip();
    Some(Video {
        name: name.to_string(),
        frames,
        frame_numbers,
        width,
        height,
        objects,
    })
}

/// Map an annotation PNG to its frame index; checks its size from the header.
fn annotation(
    p: &Path,
    by_number: &HashMap<u64, usize>,
    size: (usize, usize),
    issues: &mut Vec<DataIssue>,
) -> Option<Annotation> {
    let Some(&frame) = stem_number(p).and_then(|n| by_number.get(&n)) else {
        issues.push(issue(
            p,
            "annotation for a frame that does not exist; ignored",
        ));
        return None;
    };
    match png_size(p) {
        Ok(s) if s == size => Some(Annotation {
            frame,
            path: p.to_path_buf(),
        }),
        Ok((w, h)) => {
            issues.push(issue(
                p,
                format!(
                    "mask is {w}x{h} but the frames are {}x{}; ignored",
                    size.0, size.1
                ),
            ));
            None
        }
        Err(e) => {
            issues.push(issue(p, format!("{e}; ignored")));
            None
        }
    }
}

fn sav_objects(
    video: &str,
    entries: &[PathBuf],
    by_number: &HashMap<u64, usize>,
    size: (usize, usize),
    issues: &mut Vec<DataIssue>,
) -> Vec<ObjectTrack> {
    let mut objects = Vec::new();
    for odir in entries {
        if !odir.is_dir() {
            issues.push(issue(odir, "not an object folder; ignored"));
            continue;
        }
        let files = match list_dir(odir) {
            Ok(f) => f,
            Err(e) => {
                issues.push(issue(
                    odir,
                    format!("unreadable object folder ({e}); object skipped"),
                ));
                continue;
            }
        };
        let id = odir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // (frame number, index of its issue) of every annotation left out
        let mut dropped: Vec<(u64, usize)> = Vec::new();
        let mut anns: Vec<Annotation> = Vec::new();
        for p in files.iter().filter(|p| has_ext(p, &["png"])) {
            let at = issues.len();
            match annotation(p, by_number, size, issues) {
                Some(a) => anns.push(a),
                None => {
                    if let Some(n) = stem_number(p).filter(|n| by_number.contains_key(n)) {
                        dropped.push((n, at));
                    }
                }
            }
        }
        anns.sort_by_key(|a| a.frame);
        // An unusable annotation before the first usable one would silently move the prompt
        // to a later frame: its problem line says so, with the video and the object.
        let first_kept = anns.first().map(|a| a.frame);
        if let Some(&(_, at)) = dropped
            .iter()
            .filter(|(n, _)| first_kept.is_none_or(|f| by_number[n] < f))
            .min()
        {
            let i = &mut issues[at];
            i.message = format!(
                "video {video} object {id}: first annotation unusable ({}); {}",
                i.message.trim_end_matches("; ignored"),
                match first_kept {
                    Some(f) => format!("the prompt moves to a later annotation (frame index {f})"),
                    None => "the object is skipped".to_string(),
                }
            );
        }
        if anns.is_empty() {
            issues.push(issue(odir, "object has no usable annotation; skipped"));
            continue;
        }
        objects.push(ObjectTrack {
            id,
            kind: MaskKind::Binary,
            annotations: anns,
        });
    }
    objects
}

fn davis_objects(
    entries: &[PathBuf],
    by_number: &HashMap<u64, usize>,
    size: (usize, usize),
    issues: &mut Vec<DataIssue>,
) -> Vec<ObjectTrack> {
    let mut anns = Vec::new();
    let mut ids = BTreeSet::new();
    for p in entries.iter().filter(|p| has_ext(p, &["png"])) {
        let Some(a) = annotation(p, by_number, size, issues) else {
            continue;
        };
        match read_label_png(p) {
            Ok(l) => {
                ids.extend(l.ids());
                anns.push(a);
            }
            Err(e) => issues.push(issue(p, format!("{e}; ignored"))),
        }
    }
    anns.sort_by_key(|a| a.frame);
    ids.into_iter()
        .map(|id| ObjectTrack {
            id: id.to_string(),
            kind: MaskKind::Label(id),
            annotations: anns.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::masks::{write_mask_png, write_palette_png, LabelMap};
    use crate::data::synth::{write_split, SynthOptions};

    /// A synthetic SA-V split of 48x32 frames (seed 1) under `root`.
    fn small_split(root: &Path, videos: usize, frames: usize, objects: usize) {
        let opts = SynthOptions {
            videos,
            frames,
            width: 48,
            height: 32,
            seed: 1,
            objects,
        };
        write_split(root, &opts).unwrap();
    }

    #[test]
    fn reads_synthetic_sav_split_and_reports_broken_items() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        small_split(root, 2, 9, 2);
        // Break things: a mis-sized mask, an annotation for a missing frame, a garbage frame name,
        // a video listed but absent, an unreadable mask.
        let a = root.join("Annotations_6fps/synth_000/000");
        write_mask_png(&a.join("00004.png"), &Mask::empty(10, 10)).unwrap();
        write_mask_png(&a.join("00400.png"), &Mask::empty(48, 32)).unwrap();
        std::fs::write(root.join("JPEGImages_24fps/synth_001/x.jpg"), b"junk").unwrap();
        std::fs::write(
            root.join("Annotations_6fps/synth_001/000/00008.png"),
            b"junk",
        )
        .unwrap();
        std::fs::write(root.join("synth.txt"), "synth_000\nsynth_001\nsynth_404\n").unwrap();

        let split = Split::open(
            root,
            &SplitOptions {
                split_name: Some("synth".into()),
                check_frames: true,
            },
        )
        .unwrap();
        assert_eq!(split.layout, Layout::Sav);
        assert_eq!(split.videos.len(), 2);
        let v = &split.videos[0];
        assert_eq!((v.width, v.height, v.frames.len()), (48, 32, 9));
        assert_eq!(v.objects[0].annotated_frames(), vec![0, 8]);
        let msgs: Vec<String> = split.issues.iter().map(|i| i.to_string()).collect();
        let has = |s: &str| msgs.iter().any(|m| m.contains(s));
        assert!(has("00004.png: mask is 10x10"), "{msgs:?}");
        assert!(
            has("00400.png: annotation for a frame that does not exist"),
            "{msgs:?}"
        );
        assert!(has("x.jpg: frame not named by an integer"), "{msgs:?}");
        assert!(has("synth_404: video frame folder unreadable"), "{msgs:?}");
        assert!(has("00008.png: ") && has("unreadable PNG"), "{msgs:?}");
        let m = v.objects[0]
            .load_mask(&v.objects[0].annotations[0])
            .unwrap();
        assert_eq!((m.width, m.height), (48, 32));
    }

    #[test]
    fn reads_davis_palette_layout() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let fdir = root.join("JPEGImages/480p/bear");
        std::fs::create_dir_all(&fdir).unwrap();
        for i in 0..3 {
            image::RgbImage::new(8, 6)
                .save(fdir.join(format!("{i:05}.jpg")))
                .unwrap();
        }
        let mut labels = LabelMap {
            width: 8,
            height: 6,
            labels: vec![0; 48],
        };
        labels.labels[3] = 2;
        labels.labels[10] = 5;
        write_palette_png(&root.join("Annotations/480p/bear/00000.png"), &labels).unwrap();
        write_palette_png(
            &root.join("Annotations/480p/bear/00002.png"),
            &LabelMap {
                labels: vec![0; 48],
                ..labels.clone()
            },
        )
        .unwrap();
        let split = Split::open(root, &SplitOptions::default()).unwrap();
        assert_eq!(split.layout, Layout::Davis2017);
        let v = &split.videos[0];
        let ids: Vec<&str> = v.objects.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, vec!["2", "5"]);
        assert_eq!(v.objects[1].annotated_frames(), vec![0, 2]);
        let m = v.objects[1]
            .load_mask(&v.objects[1].annotations[0])
            .unwrap();
        assert_eq!(m.area(), 1);
        assert!(m.get(2, 1));
        assert!(split.issues.is_empty(), "{:?}", split.issues);
    }

    #[test]
    fn not_a_split_is_input_error() {
        let d = tempfile::tempdir().unwrap();
        let e = Split::open(d.path(), &SplitOptions::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_broken_first_annotation_is_its_own_problem() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        small_split(root, 1, 9, 2);
        let a = root.join("Annotations_6fps/synth_000");
        write_mask_png(&a.join("000/00000.png"), &Mask::empty(10, 10)).unwrap();
        std::fs::write(a.join("001/00000.png"), b"not a png").unwrap();
        let split = Split::open(root, &SplitOptions::default()).unwrap();
        let v = &split.videos[0];
        assert_eq!(v.objects[0].annotated_frames()[0], 4);
        let msgs: Vec<String> = split.issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("000/00000.png: video synth_000 object 000: first annotation unusable (mask is 10x10 but the frames are 48x32); the prompt moves to a later annotation (frame index 4)"),
            "{msgs:?}"
        );
        assert!(
            msgs[1]
                .contains("001/00000.png: video synth_000 object 001: first annotation unusable (")
                && msgs[1].contains("the prompt moves to a later annotation"),
            "{msgs:?}"
        );
    }

    /// A first frame cut short in its header: one problem line that names the video and says
    /// why the whole video goes (it gives the size), not a message broken over two lines.
    #[test]
    fn a_truncated_first_frame_is_one_line_naming_the_video() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        small_split(root, 2, 4, 1);
        let f = root.join("JPEGImages_24fps/synth_000/00000.jpg");
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..100]).unwrap();
        let split = Split::open(root, &SplitOptions::default()).unwrap();
        assert_eq!(split.videos.len(), 1);
        let msgs: Vec<String> = split.issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(!msgs[0].contains('\n'), "{msgs:?}");
        assert!(
            msgs[0].contains("00000.jpg: video synth_000: its first frame, which gives the video's size, is unreadable (")
                && msgs[0].ends_with("); video left out"),
            "{msgs:?}"
        );
    }

    #[test]
    fn a_split_name_without_its_list_is_input_error() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write_split(
            root,
            &SynthOptions {
                videos: 1,
                frames: 3,
                width: 16,
                height: 16,
                seed: 1,
                objects: 1,
            },
        )
        .unwrap();
        std::fs::write(root.join("sav_val.txt"), "synth_000\n").unwrap();
        let open = |name: &str| {
            Split::open(
                root,
                &SplitOptions {
                    split_name: Some(name.into()),
                    check_frames: false,
                },
            )
        };
        assert_eq!(open("sav_val").unwrap().videos.len(), 1);
        let e = open("sav_vall").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("sav_vall.txt not found") && msg.contains(": sav_val"),
            "{msg}"
        );
    }
}
