//! Per-frame J (region IoU) and F (boundary F-measure), computed exactly as the official SA-V
//! evaluator (`sav_dataset/utils/sav_benchmark.py`, itself from vos-benchmark and the DAVIS 2017
//! evaluation) computes them, bit for bit:
//!
//! - J = |P ∧ G| / |P ∨ G|, and 1 when both masks are empty.
//! - Boundary map: the 1-pixel `_seg2bmap` map (a pixel differs from its right, bottom or
//!   bottom-right neighbour; the last row compares only to the right, the last column only
//!   downwards, and the bottom-right pixel is never a boundary).
//! - Tolerance: both boundary maps are dilated by `skimage.morphology.disk(r)` with
//!   `r = ceil(0.008 * sqrt(H^2 + W^2))`; `disk(r)` holds the offsets with `dy^2 + dx^2 <= r^2`.
//!   Instead of scanning the disk for every pixel (a second per 1080p frame) we ask, for each
//!   boundary pixel of one map, whether the other map has a pixel within distance `r`: a
//!   per-row nearest-pixel table plus `2r+1` row probes per boundary pixel. Same counts,
//!   milliseconds per 1080p frame (see `benches/eval.rs`).
//! - P = |Bp ∧ dil(Bg)| / |Bp|, R = |Bg ∧ dil(Bp)| / |Bg|, with the official empty-map cases,
//!   F = 2PR / (P + R), or 0 when P + R = 0.

use super::edt::squared_edt;
use crate::data::masks::Mask;
use crate::{Error, Result};

/// The boundary tolerance as a fraction of the image diagonal.
pub const BOUNDARY_TH: f64 = 0.008;

/// Dilation radius in pixels for an image of `width x height`, as the official
/// `np.ceil(0.008 * np.linalg.norm(mask.shape))`.
pub fn bound_pix(width: usize, height: usize) -> usize {
    let (h, w) = (height as f64, width as f64);
    (BOUNDARY_TH * (h * h + w * w).sqrt()).ceil() as usize
}

/// J and F of one frame, as fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameScore {
    pub j: f64,
    pub f: f64,
}

/// The official `get_iou`: intersection over union, 1 when both masks are empty.
pub fn iou(pred: &Mask, gt: &Mask) -> f64 {
    let mut inter = 0u64;
    let mut sum = 0u64;
    for (&p, &g) in pred.data.iter().zip(&gt.data) {
        inter += (p & g) as u64;
        sum += p as u64 + g as u64;
    }
    if inter == sum {
        // Only possible when both are empty.
        return 1.0;
    }
    inter as f64 / (sum - inter) as f64
}

/// A 1-pixel boundary map, with its pixel list and bounding box kept for fast matching.
pub struct Boundary {
    pub width: usize,
    pub height: usize,
    /// Row-major boundary map (`_seg2bmap`).
    pub map: Vec<bool>,
    /// Boundary pixels as (x, y), in raster order.
    pub points: Vec<(u32, u32)>,
}

impl Boundary {
    /// `_seg2bmap` of a mask.
    pub fn of(mask: &Mask) -> Self {
        let (w, h) = (mask.width, mask.height);
        let seg = &mask.data;
        let mut map = vec![false; w * h];
        let at = |x: usize, y: usize| -> bool { x < w && y < h && seg[y * w + x] };
        if w > 0 && h > 0 {
            for y in 0..h {
                for x in 0..w {
                    let s = seg[y * w + x];
                    let e = at(x + 1, y);
                    let so = at(x, y + 1);
                    let se = at(x + 1, y + 1);
                    map[y * w + x] = (s ^ e) | (s ^ so) | (s ^ se);
                }
            }
            // The special cases, in the official order.
            for x in 0..w {
                map[(h - 1) * w + x] = seg[(h - 1) * w + x] ^ at(x + 1, h - 1);
            }
            for y in 0..h {
                map[y * w + (w - 1)] = seg[y * w + (w - 1)] ^ at(w - 1, y + 1);
            }
            map[(h - 1) * w + (w - 1)] = false;
        }
        let mut points = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if map[y * w + x] {
                    points.push((x as u32, y as u32));
                }
            }
        }
        Self {
            width: w,
            height: h,
            map,
            points,
        }
    }

    pub fn count(&self) -> usize {
        self.points.len()
    }

    /// Inclusive bounding box `[x0, y0, x1, y1]` of the boundary pixels.
    fn bbox(&self) -> Option<[usize; 4]> {
        let first = self.points.first()?;
        let last = self.points.last()?;
        let (mut x0, mut x1) = (usize::MAX, 0);
        for &(x, _) in &self.points {
            x0 = x0.min(x as usize);
            x1 = x1.max(x as usize);
        }
        Some([x0, first.1 as usize, x1, last.1 as usize])
    }
}

/// How many pixels of `a` lie within Euclidean distance `r` of some pixel of `b`, i.e.
/// `sum(a * cv2.dilate(b, disk(r)))`.
pub fn count_within(a: &Boundary, b: &Boundary, r: usize) -> usize {
    let Some([bx0, by0, bx1, by1]) = b.bbox() else {
        return 0;
    };
    let w = b.width;
    // Only columns within r of b's box can be matched.
    let cx0 = bx0.saturating_sub(r);
    let cx1 = (bx1 + r).min(w - 1);
    let cw = cx1 - cx0 + 1;
    let rows = by1 - by0 + 1;
    let cap = (r + 1).min(u16::MAX as usize) as u16;
    // Per row of b's box: distance along the row to the nearest b pixel, capped at r + 1.
    let mut near = vec![cap; rows * cw];
    let mut has_row = vec![false; rows];
    for &(x, y) in &b.points {
        has_row[y as usize - by0] = true;
        near[(y as usize - by0) * cw + (x as usize - cx0)] = 0;
    }
    for (ri, row) in near.chunks_mut(cw).enumerate() {
        if !has_row[ri] {
            continue;
        }
        let mut d = cap;
        for v in row.iter_mut() {
            d = if *v == 0 {
                0
            } else {
                d.saturating_add(1).min(cap)
            };
            *v = d;
        }
        let mut d = cap;
        for v in row.iter_mut().rev() {
            d = if *v == 0 {
                0
            } else {
                d.saturating_add(1).min(cap)
            };
            *v = (*v).min(d);
        }
    }
    let r2 = (r * r) as i64;
    let mut count = 0;
    for &(x, y) in &a.points {
        let (x, y) = (x as usize, y as usize);
        if x < cx0 || x > cx1 || y + r < by0 || y > by1 + r {
            continue;
        }
        let ylo = y.saturating_sub(r).max(by0);
        let yhi = (y + r).min(by1);
        for yy in ylo..=yhi {
            let ri = yy - by0;
            if !has_row[ri] {
                continue;
            }
            let dx = near[ri * cw + (x - cx0)] as i64;
            let dy = yy as i64 - y as i64;
            if dx * dx + dy * dy <= r2 {
                count += 1;
                break;
            }
        }
    }
    count
}

/// Dilation of a binary map by `disk(r)` (as `cv2.dilate(map, skimage.morphology.disk(r))`),
/// through the exact distance transform. Used by tests and tools; scoring uses
/// [`count_within`], which never builds the dilated map.
pub fn dilate_disk(map: &[bool], width: usize, height: usize, r: usize) -> Vec<bool> {
    let r2 = (r * r) as i64;
    squared_edt(map, width, height)
        .into_iter()
        .map(|d| d <= r2)
        .collect()
}

/// The official boundary F-measure of one frame.
pub fn boundary_f(pred: &Mask, gt: &Mask) -> f64 {
    let r = bound_pix(pred.width, pred.height);
    let bp = Boundary::of(pred);
    let bg = Boundary::of(gt);
    let (n_fg, n_gt) = (bp.count(), bg.count());
    let (precision, recall) = if n_fg == 0 && n_gt > 0 {
        (1.0, 0.0)
    } else if n_fg > 0 && n_gt == 0 {
        (0.0, 1.0)
    } else if n_fg == 0 && n_gt == 0 {
        (1.0, 1.0)
    } else {
        let fg_match = count_within(&bp, &bg, r);
        let gt_match = count_within(&bg, &bp, r);
        (fg_match as f64 / n_fg as f64, gt_match as f64 / n_gt as f64)
    };
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// J and F of one (prediction, ground truth) pair of the same size.
pub fn score_frame(pred: &Mask, gt: &Mask) -> Result<FrameScore> {
    if pred.width != gt.width || pred.height != gt.height {
        return Err(Error::Input(format!(
            "prediction is {}x{} but ground truth is {}x{}",
            pred.width, pred.height, gt.width, gt.height
        )));
    }
    Ok(FrameScore {
        j: iou(pred, gt),
        f: boundary_f(pred, gt),
    })
}

/// numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array), so means agree
/// with `np.mean` to the last bit.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.mean` of a float64 sequence (NaN when empty, as numpy).
pub fn numpy_mean(a: &[f64]) -> f64 {
    pairwise_sum(a) / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_mask(w: usize, h: usize, seed: u64, blobs: usize) -> Mask {
        // Union of a few random rectangles and discs: realistic boundaries, some noise pixels.
        let mut s = seed;
        let mut next = |m: usize| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as usize) % m.max(1)
        };
        let mut m = Mask::empty(w, h);
        for _ in 0..blobs {
            let (cx, cy, rx, ry, disc) = (
                next(w),
                next(h),
                next(w / 3 + 1),
                next(h / 3 + 1),
                next(2) == 0,
            );
            for y in 0..h {
                for x in 0..w {
                    let dx = x as f64 - cx as f64;
                    let dy = y as f64 - cy as f64;
                    let inside = if disc {
                        (dx / (rx as f64 + 0.5)).powi(2) + (dy / (ry as f64 + 0.5)).powi(2) <= 1.0
                    } else {
                        dx.abs() <= rx as f64 && dy.abs() <= ry as f64
                    };
                    if inside {
                        m.data[y * w + x] = true;
                    }
                }
            }
        }
        for _ in 0..(w * h / 50) {
            let i = next(w * h);
            m.data[i] = !m.data[i];
        }
        m
    }

    /// What cv2.dilate with skimage's disk footprint computes, by brute force.
    fn naive_disk_dilate(map: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
        let r = r as i64;
        let mut out = vec![false; w * h];
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                'scan: for dy in -r..=r {
                    for dx in -r..=r {
                        if dx * dx + dy * dy > r * r {
                            continue;
                        }
                        let (yy, xx) = (y + dy, x + dx);
                        if yy >= 0
                            && yy < h as i64
                            && xx >= 0
                            && xx < w as i64
                            && map[(yy as usize) * w + xx as usize]
                        {
                            out[(y as usize) * w + x as usize] = true;
                            break 'scan;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn radius_matches_official_examples() {
        assert_eq!(bound_pix(1920, 1080), 18);
        assert_eq!(bound_pix(1280, 720), 12);
        assert_eq!(bound_pix(848, 480), 8);
        assert_eq!(bound_pix(1366, 720), 13);
        assert_eq!(bound_pix(888, 888), 11);
    }

    #[test]
    fn seg2bmap_special_rows() {
        // 3x2 full mask: interior compares to zero-padded neighbours except on the last row /
        // column, which follow the official special cases.
        let m = Mask {
            width: 3,
            height: 2,
            data: vec![true; 6],
        };
        let b = Boundary::of(&m);
        // Row 0: x=0,1 differ from se/s? s and se are true (row 1) -> only x where e/s/se false.
        // (0,0): e=T,s=T,se=T -> false; (1,0): e=T,s=T,se=T -> false; (2,0) last col: s=T -> false.
        // Row 1 (last): (0,1): e=T -> false; (1,1): e=T -> false; (2,1): corner -> false.
        assert_eq!(b.count(), 0);
        let mut m = Mask::empty(4, 4);
        m.data[5] = true; // (1,1)
        let b = Boundary::of(&m);
        // (1,1) itself differs from its right/bottom; (0,0) differs from its bottom-right;
        // (1,0) from its bottom; (0,1) from its right.
        let want: Vec<(u32, u32)> = vec![(0, 0), (1, 0), (0, 1), (1, 1)];
        assert_eq!(b.points, want);
    }

    #[test]
    fn fast_dilation_equals_disk_scan() {
        for (i, &(w, h)) in [(31, 17), (64, 48), (97, 61), (20, 120), (1, 9), (9, 1)]
            .iter()
            .enumerate()
        {
            for r in [1usize, 2, 3, 5, 8] {
                let a = Boundary::of(&lcg_mask(w, h, 10 + i as u64, 3));
                let b = Boundary::of(&lcg_mask(w, h, 100 + i as u64, 2));
                let naive = naive_disk_dilate(&b.map, w, h, r);
                assert_eq!(dilate_disk(&b.map, w, h, r), naive, "{w}x{h} r={r}");
                let want = a.map.iter().zip(&naive).filter(|(&p, &d)| p && d).count();
                assert_eq!(count_within(&a, &b, r), want, "{w}x{h} r={r}");
            }
        }
    }

    #[test]
    fn empty_cases() {
        let e = Mask::empty(10, 8);
        let mut m = Mask::empty(10, 8);
        m.data[3 * 10 + 4] = true;
        assert_eq!(score_frame(&e, &e).unwrap(), FrameScore { j: 1.0, f: 1.0 });
        assert_eq!(score_frame(&e, &m).unwrap(), FrameScore { j: 0.0, f: 0.0 });
        assert_eq!(score_frame(&m, &e).unwrap(), FrameScore { j: 0.0, f: 0.0 });
        assert_eq!(score_frame(&m, &m).unwrap(), FrameScore { j: 1.0, f: 1.0 });
        assert!(score_frame(&m, &Mask::empty(8, 10)).is_err());
    }

    #[test]
    fn pairwise_mean_small_and_large() {
        let v: Vec<f64> = (0..300).map(|i| (i as f64 * 0.37).sin().abs()).collect();
        let plain: f64 = v.iter().sum::<f64>() / v.len() as f64;
        assert!((numpy_mean(&v) - plain).abs() < 1e-12);
        assert_eq!(numpy_mean(&[0.5, 0.25]), 0.375);
        assert!(numpy_mean(&[]).is_nan());
    }
}
