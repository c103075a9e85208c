//! Frame preprocessing of the official video predictor's JPEG-folder path, bit for bit
//! (architecture.md §4.1; `sam2/utils/misc.py`, `load_video_frames_from_jpg_images` and
//! `_load_img_as_tensor`).
//!
//! The official code does, per frame:
//! `np.array(Image.open(p).convert("RGB").resize((S, S))) / 255.0` (float64, then stored as
//! float32), then `(x - mean) / std` in float32. `resize` defaults to Pillow's BICUBIC, which is
//! Pillow's own separable convolution resampler in 8-bit fixed point (`libImaging/Resample.c`),
//! not a textbook bicubic: it antialiases when shrinking, keeps a uint8 image between the
//! two 1D passes, and rounds at both. Which pass runs first depends on the Pillow version
//! ([`PassOrder`]; Pillow 13 runs the vertical pass first when the height shrinks much more than
//! the width, e.g. for portrait videos). [`pil_resize_bicubic_rgb`] reproduces Pillow 13 exactly,
//! and JPEGs are decoded by the Pillow-exact decoder in [`crate::data::jpeg`]. [`rgb_to_input_tensor`]
//! takes already-decoded RGB so tests can feed Pillow's decode and isolate that difference.
//!
//! Frames are listed like the official code (extensions `.jpg .jpeg .JPG .JPEG` exactly, sorted
//! by the integer value of the file stem) and decoded lazily, one per call.

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// ImageNet mean the official predictor normalizes with (stored as float32 there).
pub const IMG_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation the official predictor normalizes with (float32 there).
pub const IMG_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// Fixed-point precision of Pillow's 8-bit resampler: 32 bits minus 8 for the value minus 2 for
/// the overshoot of negative filter lobes.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (a = -0.5), evaluated in f64 with the same operation order.
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// One axis of the resampler: for every output index, the first input index, the number of
/// taps, and `ksize` fixed-point coefficients (only the first `count` are used).
struct Taps {
    ksize: usize,
    first: Vec<usize>,
    count: Vec<usize>,
    coeffs: Vec<i32>,
}

impl Taps {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a box covering the whole input
    /// axis (`in_size` pixels) resampled to `out_size`.
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 2.0 * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv = 1.0 / filterscale;
        let mut first = Vec::with_capacity(out_size);
        let mut count = Vec::with_capacity(out_size);
        let mut coeffs = vec![0i32; out_size * ksize];
        let mut w = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // Both bounds round by adding 0.5 and truncating toward zero, as C's (int) cast does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0f64;
            for (x, wx) in w.iter_mut().enumerate().take(n) {
                *wx = bicubic_filter(((x as i64 + xmin) as f64 - center + 0.5) * inv);
                ww += *wx;
            }
            let k = &mut coeffs[xx * ksize..(xx + 1) * ksize];
            for x in 0..n {
                let v = if ww != 0.0 { w[x] / ww } else { w[x] };
                // To 22-bit fixed point, rounding half away from zero.
                let scaled = v * (1u32 << PRECISION_BITS) as f64;
                k[x] = if v < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                };
            }
            first.push(xmin as usize);
            count.push(n);
        }
        Taps {
            ksize,
            first,
            count,
            coeffs,
        }
    }

    fn taps(&self, o: usize) -> (usize, &[i32]) {
        let k = &self.coeffs[o * self.ksize..o * self.ksize + self.count[o]];
        (self.first[o], k)
    }
}

/// Pillow's `clip8`: drop the fraction bits (arithmetic shift) and saturate to 0..=255.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding bias every accumulator starts from (one half in fixed point).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Which of the two 1D passes Pillow runs first. The passes round to uint8 in between, so the
/// order changes results by up to a few levels on some pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassOrder {
    /// Pillow >= 13.0: vertical first when the height shrinks by more than twice as many pixels
    /// as the width (`h - out_h > 0 && h - out_h > 2 * (w - out_w)`), else horizontal first.
    /// This is the reference environment's Pillow (13.0.0) and the default.
    #[default]
    Pillow13,
    /// Pillow <= 12.x: always horizontal first.
    HorizontalFirst,
}

impl PassOrder {
    fn horizontal_first(self, w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
        match self {
            PassOrder::HorizontalFirst => true,
            PassOrder::Pillow13 => {
                let dy = h as i64 - out_h as i64;
                let dx = w as i64 - out_w as i64;
                !(dy > 0 && dy > 2 * dx)
            }
        }
    }
}

/// Horizontal pass over rows `rows` of `src` (`[_, w, 3]`): `[rows.len(), out_w, 3]`.
fn horizontal_pass(src: &[u8], w: usize, rows: std::ops::Range<usize>, taps: &Taps) -> Vec<u8> {
    let ow = taps.first.len();
    let mut out = vec![0u8; rows.len() * ow * 3];
    for (r, dst_row) in rows.zip(out.chunks_exact_mut(ow * 3)) {
        let src_row = &src[r * w * 3..(r + 1) * w * 3];
        for (xx, dst) in dst_row.chunks_exact_mut(3).enumerate() {
            let (x0, k) = taps.taps(xx);
            let px = &src_row[x0 * 3..(x0 + k.len()) * 3];
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            for (p, &kv) in px.chunks_exact(3).zip(k) {
                r = r.wrapping_add((p[0] as i32).wrapping_mul(kv));
                g = g.wrapping_add((p[1] as i32).wrapping_mul(kv));
                b = b.wrapping_add((p[2] as i32).wrapping_mul(kv));
            }
            dst[0] = clip8(r);
            dst[1] = clip8(g);
            dst[2] = clip8(b);
        }
    }
    out
}

/// Vertical pass over `src` (`[_, w, 3]`, whose row 0 is source row `row_offset`):
/// `[out_h, w, 3]`.
fn vertical_pass(src: &[u8], w: usize, row_offset: usize, taps: &Taps) -> Vec<u8> {
    let row_len = w * 3;
    let oh = taps.first.len();
    let mut out = vec![0u8; oh * row_len];
    // Whole rows at a time (integer sums, so the order of the terms does not matter).
    let mut acc = vec![0i32; row_len];
    for (yy, dst_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (y0, k) = taps.taps(yy);
        let y0 = y0 - row_offset;
        acc.iter_mut().for_each(|a| *a = HALF);
        for (j, &kv) in k.iter().enumerate() {
            let src_row = &src[(y0 + j) * row_len..(y0 + j + 1) * row_len];
            for (a, &v) in acc.iter_mut().zip(src_row) {
                *a = a.wrapping_add((v as i32).wrapping_mul(kv));
            }
        }
        for (d, &a) in dst_row.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// `Image.fromarray(src, "RGB").resize((out_w, out_h), Image.BICUBIC)` exactly, as Pillow >= 13
/// computes it (see [`PassOrder`]; [`pil_resize_bicubic_rgb_with`] picks another order).
///
/// `src`: interleaved RGB `[h, w, 3]` u8 -> `[out_h, out_w, 3]` u8. The aspect ratio is not
/// preserved. Like Pillow, an axis whose size does not change is not resampled (its filter would
/// be the identity anyway), and an unchanged size is a plain copy.
pub fn pil_resize_bicubic_rgb(
    src: &[u8],
    w: u32,
    h: u32,
    out_w: u32,
    out_h: u32,
) -> Result<Vec<u8>> {
    pil_resize_bicubic_rgb_with(src, w, h, out_w, out_h, PassOrder::default())
}

/// [`pil_resize_bicubic_rgb`] with an explicit pass order (to match an older Pillow).
pub fn pil_resize_bicubic_rgb_with(
    src: &[u8],
    w: u32,
    h: u32,
    out_w: u32,
    out_h: u32,
    order: PassOrder,
) -> Result<Vec<u8>> {
    let (w, h, ow, oh) = (w as usize, h as usize, out_w as usize, out_h as usize);
    if w == 0 || h == 0 || ow == 0 || oh == 0 {
        return Err(Error::Input(format!(
            "cannot resize a {w}x{h} image to {ow}x{oh}: sizes must be positive"
        )));
    }
    if src.len() != w * h * 3 {
        return Err(Error::Input(format!(
            "RGB buffer of {} bytes does not hold a {w}x{h} image ({} bytes)",
            src.len(),
            w * h * 3
        )));
    }
    let (need_h, need_v) = (ow != w, oh != h);
    if !need_h && !need_v {
        return Ok(src.to_vec());
    }
    let vert = Taps::new(h, oh);
    if order.horizontal_first(w, h, ow, oh) {
        if !need_h {
            return Ok(vertical_pass(src, w, 0, &vert));
        }
        // Only the source rows the vertical pass will read (all of them when it is skipped).
        let y_first = vert.first[0];
        let y_last = vert.first[oh - 1] + vert.count[oh - 1];
        let mid = horizontal_pass(src, w, y_first..y_last, &Taps::new(w, ow));
        if !need_v {
            return Ok(mid);
        }
        Ok(vertical_pass(&mid, ow, y_first, &vert))
    } else {
        // Vertical first happens only when the height shrinks, so the vertical pass is needed.
        let mid = vertical_pass(src, w, 0, &vert);
        if !need_h {
            return Ok(mid);
        }
        Ok(horizontal_pass(&mid, w, 0..oh, &Taps::new(w, ow)))
    }
}

/// The official normalization of resized uint8 RGB: `x / 255.0` in f64, stored as f32, then
/// `(x - mean) / std` in f32. `rgb`: `[s, s, 3]` u8 -> planar `[3, s, s]` f32.
pub fn normalize_rgb(rgb: &[u8]) -> Vec<f32> {
    let n = rgb.len() / 3;
    let lut = normalize_lut();
    let mut out = vec![0f32; 3 * n];
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * n + i] = lut[c][p[c] as usize];
        }
    }
    out
}

/// The 256 possible inputs per channel, normalized once in the official precision: `[c][u]`.
fn normalize_lut() -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        let mean = IMG_MEAN[c] as f32;
        let std = IMG_STD[c] as f32;
        for (u, v) in table.iter_mut().enumerate() {
            let x = (u as f64 / 255.0) as f32;
            *v = (x - mean) / std;
        }
    }
    lut
}

/// [`normalize_rgb`] on `device`: on a GPU the u8 pixels are uploaded (a quarter of the f32
/// bytes) and looked up in the same table there, so the values are bit-identical; on the CPU it
/// is [`normalize_rgb`]. `rgb`: `[s, s, 3]` u8 -> `[1, 3, s, s]` f32.
pub fn normalized_input(rgb: &[u8], s: usize, device: &Device) -> Result<Tensor> {
    if rgb.len() != s * s * 3 {
        return Err(Error::Input(format!(
            "frame has {} bytes, expected {s}x{s}x3",
            rgb.len()
        )));
    }
    if device.is_cpu() {
        return Ok(Tensor::from_vec(normalize_rgb(rgb), (1, 3, s, s), device)?);
    }
    let lut: Vec<f32> = normalize_lut().iter().flatten().copied().collect();
    let lut = Tensor::from_vec(lut, 3 * 256, device)?;
    let px = Tensor::from_slice(rgb, (s * s, 3), device)?.to_dtype(candle_core::DType::U32)?;
    let offset = Tensor::from_vec(vec![0u32, 256, 512], (1, 3), device)?;
    let idx = px.broadcast_add(&offset)?.flatten_all()?;
    let v = lut.index_select(&idx, 0)?.reshape((s, s, 3))?;
    Ok(v.permute((2, 0, 1))?.contiguous()?.unsqueeze(0)?)
}

/// Decoded RGB frame (`[h, w, 3]` u8) -> the model input `[1, 3, S, S]` f32 on `device`, as the
/// official predictor builds it (Pillow bicubic resize to S x S, then [`normalize_rgb`]).
pub fn rgb_to_input_tensor(
    rgb: &[u8],
    w: u32,
    h: u32,
    image_size: usize,
    device: &Device,
) -> Result<Tensor> {
    let s = u32::try_from(image_size)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| Error::Input(format!("invalid image size {image_size}")))?;
    let resized = pil_resize_bicubic_rgb(rgb, w, h, s, s)?;
    normalized_input(&resized, image_size, device)
}

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

/// Decode one image file to interleaved RGB, like Pillow's `Image.open(p).convert("RGB")`
/// (grayscale is replicated, alpha dropped; the format is taken from the content). Returns
/// `(rgb, width, height)`. A file that cannot be decoded is [`Error::Input`] naming it.
///
/// JPEG files go through [`crate::data::jpeg`], which is byte-identical to Pillow's
/// libjpeg-turbo decode; other formats, and JPEG features outside that decoder's scope
/// (progressive, arithmetic coding, CMYK, 12-bit), go through the `image` crate.
pub fn decode_rgb(path: &Path) -> Result<(Vec<u8>, u32, u32)> {
    use crate::data::jpeg;
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if jpeg::is_jpeg(&data) {
        match jpeg::decode(&data) {
            Ok(img) => return Ok(img),
            Err(jpeg::JpegError::Unsupported(_)) => {}
            Err(e) => {
                return Err(Error::Input(format!(
                    "cannot decode image {}: {e}",
                    path.display()
                )))
            }
        }
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader
        .decode()
        .map_err(|e| Error::Input(format!("cannot decode image {}: {e}", path.display())))?;
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    Ok((rgb.into_raw(), w, h))
}

/// The `(width, height)` of an image from its header only.
fn image_dimensions(path: &Path) -> Result<(u32, u32)> {
    image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .into_dimensions()
        .map_err(|e| {
            Error::Input(format!(
                "cannot read image header of {}: {e}",
                path.display()
            ))
        })
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
        let (width, height) = image_dimensions(&paths[0])?;
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

    #[test]
    fn filter_and_taps_are_normalized() {
        assert_eq!(bicubic_filter(0.0), 1.0);
        assert_eq!(bicubic_filter(1.0), 0.0);
        assert_eq!(bicubic_filter(-2.0), 0.0);
        for (i, o) in [(320, 256), (17, 1024), (1280, 1024), (5, 1), (1, 3)] {
            let t = Taps::new(i, o);
            for xx in 0..o {
                let (x0, k) = t.taps(xx);
                assert!(x0 + k.len() <= i);
                let sum: i64 = k.iter().map(|&v| v as i64).sum();
                // Rounding each coefficient moves the sum by at most half a unit per tap.
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64,
                    "{i}->{o} @{xx}"
                );
            }
        }
    }

    #[test]
    fn resize_rejects_bad_buffers() {
        assert!(pil_resize_bicubic_rgb(&[0; 5], 2, 1, 4, 4).is_err());
        assert!(pil_resize_bicubic_rgb(&[0; 6], 2, 1, 0, 4).is_err());
        assert!(pil_resize_bicubic_rgb(&[], 0, 0, 4, 4).is_err());
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![200u8; 13 * 7 * 3];
        for (ow, oh) in [(4, 3), (50, 40), (13, 20), (9, 7)] {
            let out = pil_resize_bicubic_rgb(&src, 13, 7, ow, oh).unwrap();
            assert_eq!(out.len(), (ow * oh * 3) as usize);
            assert!(out.iter().all(|&v| v == 200), "{ow}x{oh}");
        }
    }

    #[test]
    fn normalization_uses_f32_mean_and_std() {
        let px = [0u8, 128, 255];
        let n = normalize_rgb(&px);
        assert_eq!(n[0], (0.0f32 - 0.485f64 as f32) / 0.229f64 as f32);
        assert_eq!(
            n[1],
            ((128.0f64 / 255.0) as f32 - 0.456f64 as f32) / 0.224f64 as f32
        );
        assert_eq!(n[2], (1.0f32 - 0.406f64 as f32) / 0.225f64 as f32);
    }
}
