//! A folder of JPEG frames, listed and read the way the official video predictor reads it
//! (`sam2/utils/misc.py`, `load_video_frames_from_jpg_images`): extensions `.jpg .jpeg .JPG
//! .JPEG` exactly, sorted by the integer value of the file stem, decoded lazily, one frame per
//! call, through the Pillow-exact pipeline of [`crate::image`].

use super::FrameSource;
use crate::error::{Error, Result};
use crate::image::{decode_rgb, dimensions, rgb_to_input_tensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// Python's `int(s)` on a file stem, for the subset that can matter here: surrounding
/// whitespace, an optional sign, ASCII digits with single underscores between them (Python also
/// takes non-ASCII decimal digits; those stems are rejected here).
/// `None` where Python would raise (or the value does not fit in an i128).
fn python_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return None;
    }
    let mut v: i128 = 0;
    let mut prev_underscore = false;
    for ch in digits.chars() {
        if ch == '_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        let d = ch.to_digit(10)? as i128;
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    Some(if neg { -v } else { v })
}

/// The frame files of a JPEG folder, in the official order: names whose extension is exactly
/// `.jpg`, `.jpeg`, `.JPG` or `.JPEG` (other spellings such as `.Jpg` are ignored, as upstream),
/// sorted by the integer value of the stem. A stem that is not an integer, two files with the same
/// index, or an entry that is not a file is an error naming it.
pub fn list_jpeg_frames(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "video frame folder {} does not exist or is not a directory",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut frames: Vec<(i128, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_frame = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("jpg" | "jpeg" | "JPG" | "JPEG")
        );
        if !is_frame {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str());
        let idx = stem.and_then(python_int).ok_or_else(|| {
            Error::Input(format!(
                "frame file {} is not named <integer>.jpg (the official loader sorts frames by \
                 the integer value of the file name)",
                path.display()
            ))
        })?;
        if !path.is_file() {
            return Err(Error::Input(format!(
                "frame {} is not a file",
                path.display()
            )));
        }
        frames.push((idx, path));
    }
    if frames.is_empty() {
        return Err(Error::Input(format!(
            "no JPEG frames (.jpg/.jpeg) found in {}",
            dir.display()
        )));
    }
    frames.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    for pair in frames.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(Error::Input(format!(
                "frames {} and {} have the same index {}",
                pair[0].1.display(),
                pair[1].1.display(),
                pair[0].0
            )));
        }
    }
    Ok(frames.into_iter().map(|(_, p)| p).collect())
}

/// A folder of JPEG frames, opened like the official video predictor opens it, decoded lazily
/// (one frame per call; nothing is cached).
#[derive(Debug, Clone)]
pub struct VideoFrames {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    width: u32,
    height: u32,
}

impl VideoFrames {
    /// List the frames of `dir` ([`list_jpeg_frames`]) and read the video size from the first
    /// frame's header.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let paths = list_jpeg_frames(&dir)?;
        let (width, height) = dimensions(&paths[0])?;
        Ok(VideoFrames {
            dir,
            paths,
            width,
            height,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The frame files in video order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Video width in pixels (the first frame's).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Video height in pixels (the first frame's).
    pub fn height(&self) -> u32 {
        self.height
    }

    fn path(&self, idx: usize) -> Result<&Path> {
        self.paths.get(idx).map(PathBuf::as_path).ok_or_else(|| {
            Error::Input(format!(
                "frame index {idx} out of range: {} has {} frames",
                self.dir.display(),
                self.paths.len()
            ))
        })
    }

    /// Decode frame `idx` to interleaved RGB `(rgb [h, w, 3], width, height)`. A frame whose size
    /// differs from the video's is an error naming the file.
    pub fn load_rgb(&self, idx: usize) -> Result<(Vec<u8>, u32, u32)> {
        let path = self.path(idx)?;
        let (rgb, w, h) = decode_rgb(path)?;
        if (w, h) != (self.width, self.height) {
            return Err(Error::Input(format!(
                "frame {} is {w}x{h}, but the video is {}x{} (from {})",
                path.display(),
                self.width,
                self.height,
                self.paths[0].display()
            )));
        }
        Ok((rgb, w, h))
    }

    /// Frame `idx` as the model input: `[1, 3, image_size, image_size]` f32 on `device`.
    pub fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor> {
        let (rgb, w, h) = self.load_rgb(idx)?;
        rgb_to_input_tensor(&rgb, w, h, image_size, device)
    }
}

impl FrameSource for VideoFrames {
    fn len(&self) -> usize {
        VideoFrames::len(self)
    }
    fn size(&self) -> (usize, usize) {
        (self.height() as usize, self.width() as usize)
    }
    fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor> {
        VideoFrames::load_tensor(self, idx, image_size, device)
    }
    fn path(&self, idx: usize) -> Option<&Path> {
        self.paths().get(idx).map(|p| p.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_matches_python() {
        assert_eq!(python_int("00000"), Some(0));
        assert_eq!(python_int("42"), Some(42));
        assert_eq!(python_int(" 7 "), Some(7));
        assert_eq!(python_int("-3"), Some(-3));
        assert_eq!(python_int("+3"), Some(3));
        assert_eq!(python_int("1_000"), Some(1000));
        for bad in ["", "-", "a1", "1a", "1__0", "_1", "1_", "1.5", "0x10"] {
            assert_eq!(python_int(bad), None, "{bad:?}");
        }
        // Deliberate divergence: Python also accepts non-ASCII decimal digits; here such a stem
        // is rejected (an error naming the file), never silently misordered.
        assert_eq!(python_int("١٢"), None);
    }
}
