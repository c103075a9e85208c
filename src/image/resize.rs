//! Pillow's BICUBIC resize of 8-bit RGB, bit for bit.
//!
//! `Image.resize((S, S))` defaults to BICUBIC, which is Pillow's own separable convolution
//! resampler in 8-bit fixed point (`libImaging/Resample.c`), not a textbook bicubic: it
//! antialiases when shrinking, keeps a uint8 image between the two 1D passes, and rounds at both.
//! Which pass runs first depends on the Pillow version ([`PassOrder`]; Pillow 13 runs the vertical
//! pass first when the height shrinks much more than the width, e.g. for portrait videos).
//! [`pil_resize_bicubic_rgb`] reproduces Pillow 13 exactly.

use crate::error::{Error, Result};

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

/// [`pil_resize_bicubic_rgb`] to the model's square input, `image_size` x `image_size`.
pub fn resize_to_square(rgb: &[u8], w: u32, h: u32, image_size: usize) -> Result<Vec<u8>> {
    let s = u32::try_from(image_size)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| Error::Input(format!("invalid image size {image_size}")))?;
    pil_resize_bicubic_rgb(rgb, w, h, s, s)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
