//! Mask images: reading PNG annotations exactly as the official tools see them, writing
//! predicted masks, and a compact run-length form the benchmark keeps predictions in.
//!
//! Reading follows PIL's `np.array(Image.open(path))`, which is what the official SA-V evaluator
//! does: grey PNGs give their grey value, palette PNGs give the palette *index* (not the colour),
//! 16-bit PNGs give the 16-bit value. A pixel is foreground when that value is `> 0`. Colour
//! PNGs (RGB/RGBA, which the official evaluator rejects) count a pixel as foreground when any
//! colour channel is non-zero, so a mask saved in colour by some tool is still read sensibly.

use crate::{Error, Result};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// A binary mask, row-major, `width * height` pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<bool>,
}

impl Mask {
    pub fn empty(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![false; width * height],
        }
    }

    pub fn from_vec(width: usize, height: usize, data: Vec<bool>) -> Result<Self> {
        if data.len() != width * height {
            return Err(Error::Input(format!(
                "mask of {width}x{height} needs {} pixels, got {}",
                width * height,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> bool {
        self.data[y * self.width + x]
    }

    /// Number of foreground pixels.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&b| b).count()
    }

    pub fn is_empty(&self) -> bool {
        !self.data.iter().any(|&b| b)
    }

    /// Tight inclusive box `[x0, y0, x1, y1]` of the foreground, `None` when empty.
    pub fn bbox(&self) -> Option<[usize; 4]> {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..self.height {
            let row = &self.data[y * self.width..(y + 1) * self.width];
            if let Some(first) = row.iter().position(|&b| b) {
                let last = row.iter().rposition(|&b| b).unwrap_or(first);
                x0 = x0.min(first);
                x1 = x1.max(last);
                y0 = y0.min(y);
                y1 = y;
            }
        }
        (x0 != usize::MAX).then_some([x0, y0, x1, y1])
    }

    /// The mask moved by `(dx, dy)` pixels; pixels shifted in from outside are background.
    pub fn shifted(&self, dx: isize, dy: isize) -> Mask {
        let mut out = Mask::empty(self.width, self.height);
        for y in 0..self.height as isize {
            let sy = y - dy;
            if sy < 0 || sy >= self.height as isize {
                continue;
            }
            for x in 0..self.width as isize {
                let sx = x - dx;
                if sx >= 0 && sx < self.width as isize {
                    out.data[(y as usize) * self.width + x as usize] =
                        self.data[(sy as usize) * self.width + sx as usize];
                }
            }
        }
        out
    }
}

/// The raw values of a mask PNG (grey value or palette index per pixel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    pub width: usize,
    pub height: usize,
    pub labels: Vec<u16>,
}

impl LabelMap {
    /// Foreground as the official evaluator reads SA-V masks: value `> 0`.
    pub fn foreground(&self) -> Mask {
        Mask {
            width: self.width,
            height: self.height,
            data: self.labels.iter().map(|&v| v > 0).collect(),
        }
    }

    /// The pixels equal to `id` (DAVIS-style multi-object annotations).
    pub fn object(&self, id: u16) -> Mask {
        Mask {
            width: self.width,
            height: self.height,
            data: self.labels.iter().map(|&v| v == id).collect(),
        }
    }

    /// The distinct non-zero values, ascending.
    pub fn ids(&self) -> Vec<u16> {
        let mut seen = vec![false; 65536];
        for &v in &self.labels {
            seen[v as usize] = true;
        }
        (1..65536).filter(|&v| seen[v]).map(|v| v as u16).collect()
    }
}

fn png_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: unreadable PNG mask: {e}", path.display()))
}

/// Width and height of a PNG without decoding its pixels.
pub fn png_size(path: &Path) -> Result<(usize, usize)> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut dec = png::Decoder::new(BufReader::new(f));
    let info = dec.read_header_info().map_err(|e| png_err(path, e))?;
    Ok((info.width as usize, info.height as usize))
}

/// Read a mask PNG as raw values (see the module doc for the rules).
pub fn read_label_png(path: &Path) -> Result<LabelMap> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut dec = png::Decoder::new(BufReader::new(f));
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(|e| png_err(path, e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| png_err(path, "image too large"))?;
    // The header's dimensions are only a claim: the pixels have to come out of the file's
    // zlib stream, and deflate expands at most ~1032:1. Refuse a size the file cannot hold
    // before allocating for it (a 60-byte PNG may declare 65535 x 65535 pixels).
    if size as u64 > max_inflated_bytes(file_len) {
        return Err(png_err(
            path,
            format!(
                "the header declares {}x{} pixels, more than a {file_len}-byte file can hold",
                reader.info().width,
                reader.info().height
            ),
        ));
    }
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(|e| png_err(path, e))?;
    let (w, h) = (out.width as usize, out.height as usize);
    let line = out.line_size;
    let depth = out.bit_depth as usize;
    let channels = match out.color_type {
        png::ColorType::Grayscale | png::ColorType::Indexed => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
    };
    let mut labels = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * line..(y + 1) * line];
        for x in 0..w {
            let sample = |c: usize| -> u16 {
                let i = x * channels + c;
                match depth {
                    16 => u16::from_be_bytes([row[2 * i], row[2 * i + 1]]),
                    8 => row[i] as u16,
                    d => {
                        let per_byte = 8 / d;
                        let byte = row[i / per_byte];
                        let shift = 8 - d * (i % per_byte + 1);
                        ((byte >> shift) & ((1u8 << d) - 1)) as u16
                    }
                }
            };
            let v = match out.color_type {
                png::ColorType::Grayscale
                | png::ColorType::Indexed
                | png::ColorType::GrayscaleAlpha => sample(0),
                png::ColorType::Rgb | png::ColorType::Rgba => {
                    u16::from((0..3).any(|c| sample(c) != 0))
                }
            };
            labels.push(v);
        }
    }
    Ok(LabelMap {
        width: w,
        height: h,
        labels,
    })
}

/// The most bytes a zlib stream within `compressed` bytes can inflate to: deflate's best
/// ratio is 1032:1 (a 258-byte match in under 2 bits), plus slack for tiny files.
pub fn max_inflated_bytes(compressed: u64) -> u64 {
    compressed.saturating_mul(1032).saturating_add(1 << 16)
}

/// Read a binary mask PNG (`> 0` is foreground).
pub fn read_mask_png(path: &Path) -> Result<Mask> {
    Ok(read_label_png(path)?.foreground())
}

fn write_png(
    path: &Path,
    w: usize,
    h: usize,
    color: png::ColorType,
    palette: Option<&[u8]>,
    data: &[u8],
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w as u32, h as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    if let Some(p) = palette {
        enc.set_palette(p.to_vec());
    }
    let werr =
        |e: png::EncodingError| Error::Input(format!("{}: cannot write PNG: {e}", path.display()));
    let mut writer = enc.write_header().map_err(werr)?;
    writer.write_image_data(data).map_err(werr)?;
    writer.finish().map_err(werr)
}

/// Write a binary mask as an 8-bit grey PNG with values 0 and 255 (SA-V style).
pub fn write_mask_png(path: &Path, mask: &Mask) -> Result<()> {
    let data: Vec<u8> = mask.data.iter().map(|&b| if b { 255 } else { 0 }).collect();
    write_png(
        path,
        mask.width,
        mask.height,
        png::ColorType::Grayscale,
        None,
        &data,
    )
}

/// Write object ids (0..=255) as a palette PNG (DAVIS style). Colours follow the DAVIS palette
/// convention: bit-interleaved RGB from the id.
pub fn write_palette_png(path: &Path, labels: &LabelMap) -> Result<()> {
    let mut data = Vec::with_capacity(labels.labels.len());
    for &v in &labels.labels {
        let b = u8::try_from(v).map_err(|_| {
            Error::Input(format!(
                "{}: object id {v} does not fit a palette PNG",
                path.display()
            ))
        })?;
        data.push(b);
    }
    let mut palette = Vec::with_capacity(256 * 3);
    for id in 0..256u32 {
        let (mut r, mut g, mut b, mut c) = (0u32, 0u32, 0u32, id);
        for j in 0..8 {
            r |= (c & 1) << (7 - j);
            g |= ((c >> 1) & 1) << (7 - j);
            b |= ((c >> 2) & 1) << (7 - j);
            c >>= 3;
        }
        palette.extend_from_slice(&[r as u8, g as u8, b as u8]);
    }
    write_png(
        path,
        labels.width,
        labels.height,
        png::ColorType::Indexed,
        Some(&palette),
        &data,
    )
}

/// A binary mask stored as run lengths over the row-major pixels, starting with a background
/// run (possibly 0). A 1080p object mask takes a few hundred bytes instead of 2 MB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedMask {
    pub width: usize,
    pub height: usize,
    runs: Vec<u32>,
}

impl PackedMask {
    pub fn from_mask(mask: &Mask) -> Self {
        let mut runs = Vec::new();
        let mut current = false;
        let mut len = 0u32;
        for &b in &mask.data {
            if b != current {
                runs.push(len);
                current = b;
                len = 0;
            }
            len += 1;
        }
        runs.push(len);
        Self {
            width: mask.width,
            height: mask.height,
            runs,
        }
    }

    pub fn to_mask(&self) -> Mask {
        let mut data = Vec::with_capacity(self.width * self.height);
        let mut value = false;
        for &r in &self.runs {
            data.extend(std::iter::repeat_n(value, r as usize));
            value = !value;
        }
        Mask {
            width: self.width,
            height: self.height,
            data,
        }
    }

    pub fn area(&self) -> usize {
        self.runs
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&r| r as usize)
            .sum()
    }

    /// Heap bytes used by the runs.
    pub fn stored_bytes(&self) -> usize {
        self.runs.len() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_mask(w: usize, h: usize, seed: u64) -> Mask {
        let mut s = seed;
        let data = (0..w * h)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 61) < 3
            })
            .collect();
        Mask {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn packed_roundtrip() {
        for (w, h, seed) in [(7, 5, 1), (1, 1, 2), (33, 17, 3)] {
            let m = random_mask(w, h, seed);
            let p = PackedMask::from_mask(&m);
            assert_eq!(p.to_mask(), m);
            assert_eq!(p.area(), m.area());
        }
        let full = Mask {
            width: 4,
            height: 3,
            data: vec![true; 12],
        };
        assert_eq!(PackedMask::from_mask(&full).to_mask(), full);
        let empty = Mask::empty(4, 3);
        assert_eq!(PackedMask::from_mask(&empty).to_mask(), empty);
    }

    #[test]
    fn png_roundtrip_grey_and_palette() {
        let dir = tempfile::tempdir().unwrap();
        let m = random_mask(13, 9, 7);
        let p = dir.path().join("a/m.png");
        write_mask_png(&p, &m).unwrap();
        assert_eq!(read_mask_png(&p).unwrap(), m);
        assert_eq!(png_size(&p).unwrap(), (13, 9));
        let labels = LabelMap {
            width: 5,
            height: 2,
            labels: vec![0, 1, 2, 255, 0, 3, 3, 1, 0, 0],
        };
        let q = dir.path().join("p.png");
        write_palette_png(&q, &labels).unwrap();
        let back = read_label_png(&q).unwrap();
        assert_eq!(back, labels);
        assert_eq!(back.ids(), vec![1, 2, 3, 255]);
        assert_eq!(back.object(3).area(), 2);
    }

    #[test]
    fn bbox_and_shift() {
        let mut m = Mask::empty(6, 4);
        m.data[6 + 2] = true;
        m.data[2 * 6 + 4] = true;
        assert_eq!(m.bbox(), Some([2, 1, 4, 2]));
        assert_eq!(Mask::empty(3, 3).bbox(), None);
        let s = m.shifted(1, 1);
        assert!(s.get(3, 2) && s.get(5, 3));
        assert_eq!(s.area(), 2);
        assert_eq!(m.shifted(2, 0).area(), 1);
    }

    #[test]
    fn unreadable_png_is_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.png");
        std::fs::write(&p, b"not a png").unwrap();
        let e = read_mask_png(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("bad.png"));
    }
}
