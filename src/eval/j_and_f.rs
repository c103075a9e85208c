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
//!   boundary pixel of one map, whether the other map has a pixel within distance `r`: at most
//!   `2r+1` row probes, each a binary search in that row's sorted boundary pixels. Masks are
//!   packed 64 pixels to a word for the boundary map and the IoU. Same counts as the disk
//!   dilation (tested against a brute-force disk scan), milliseconds per 1080p frame (see
//!   `benches/eval.rs`).
//! - P = |Bp ∧ dil(Bg)| / |Bp|, R = |Bg ∧ dil(Bp)| / |Bg|, with the official empty-map cases,
//!   F = 2PR / (P + R), or 0 when P + R = 0.

use crate::data::edt::squared_edt;
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

/// A mask packed 64 pixels to a word (bit `x % 64` of word `x / 64`), rows padded to whole
/// words with zero bits.
pub struct BitMask {
    pub width: usize,
    pub height: usize,
    words_per_row: usize,
    words: Vec<u64>,
}

impl BitMask {
    pub fn from_mask(mask: &Mask) -> Self {
        let (w, h) = (mask.width, mask.height);
        let wpr = w.div_ceil(64).max(1);
        let mut words = vec![0u64; wpr * h];
        if w > 0 {
            for (row, out) in mask.data.chunks_exact(w).zip(words.chunks_exact_mut(wpr)) {
                for (chunk, word) in row.chunks(64).zip(out.iter_mut()) {
                    let mut v = 0u64;
                    let mut eights = chunk.chunks_exact(8);
                    for (j, c) in eights.by_ref().enumerate() {
                        v |= pack8(c) << (8 * j);
                    }
                    let done = chunk.len() - eights.remainder().len();
                    for (i, &b) in eights.remainder().iter().enumerate() {
                        v |= (b as u64) << (done + i);
                    }
                    *word = v;
                }
            }
        }
        Self {
            width: w,
            height: h,
            words_per_row: wpr,
            words,
        }
    }

    fn row(&self, y: usize) -> &[u64] {
        &self.words[y * self.words_per_row..(y + 1) * self.words_per_row]
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }
}

/// Eight booleans to the low byte, `c[i]` at bit `i`: the bytes (each 0 or 1) are gathered
/// into the top byte by one multiplication.
#[inline]
fn pack8(c: &[bool]) -> u64 {
    let v = u64::from_le_bytes([
        c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8, c[4] as u8, c[5] as u8, c[6] as u8,
        c[7] as u8,
    ]);
    v.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bits of each pixel's right-hand neighbour: bit x of the result is bit x + 1 of the row.
#[inline]
fn east(row: &[u64], k: usize) -> u64 {
    let next = row.get(k + 1).map_or(0, |&n| n << 63);
    (row[k] >> 1) | next
}

/// The official `get_iou`: intersection over union, 1 when both masks are empty.
pub fn iou(pred: &Mask, gt: &Mask) -> f64 {
    iou_bits(&BitMask::from_mask(pred), &BitMask::from_mask(gt))
}

fn iou_bits(p: &BitMask, g: &BitMask) -> f64 {
    let inter: u64 = p
        .words
        .iter()
        .zip(&g.words)
        .map(|(a, b)| (a & b).count_ones() as u64)
        .sum();
    let sum = p.count() + g.count();
    if inter == sum {
        // Only possible when both are empty.
        return 1.0;
    }
    inter as f64 / (sum - inter) as f64
}

/// A 1-pixel boundary map as its pixel list, in raster order.
pub struct Boundary {
    pub width: usize,
    pub height: usize,
    /// Boundary pixels as (x, y), in raster order.
    pub points: Vec<(u32, u32)>,
}

impl Boundary {
    /// `_seg2bmap` of a mask.
    pub fn of(mask: &Mask) -> Self {
        Self::of_bits(&BitMask::from_mask(mask))
    }

    /// `_seg2bmap` of a packed mask, 64 pixels at a time.
    pub fn of_bits(m: &BitMask) -> Self {
        let (w, h) = (m.width, m.height);
        let mut points = Vec::new();
        if w == 0 || h == 0 {
            return Self {
                width: w,
                height: h,
                points,
            };
        }
        let wpr = m.words_per_row;
        let zeros = vec![0u64; wpr];
        let last_word = (w - 1) / 64;
        let last_bit = 1u64 << ((w - 1) % 64);
        for y in 0..h {
            let cur = m.row(y);
            let last_row = y + 1 == h;
            let nxt = if last_row { &zeros[..] } else { m.row(y + 1) };
            for k in 0..wpr {
                let c = cur[k];
                let e = east(cur, k);
                let mut b = if last_row {
                    // Last row: compared with the right neighbour only.
                    c ^ e
                } else {
                    (c ^ e) | (c ^ nxt[k]) | (c ^ east(nxt, k))
                };
                if k == last_word {
                    // Last column: compared downwards only; the bottom-right pixel never is.
                    let down = if last_row { 0 } else { (c ^ nxt[k]) & last_bit };
                    b = (b & !last_bit) | down;
                    if last_row {
                        b &= !last_bit;
                    }
                    if !w.is_multiple_of(64) {
                        b &= (1u64 << (w % 64)) - 1;
                    }
                }
                while b != 0 {
                    let i = b.trailing_zeros() as usize;
                    points.push(((k * 64 + i) as u32, y as u32));
                    b &= b - 1;
                }
            }
        }
        Self {
            width: w,
            height: h,
            points,
        }
    }

    pub fn count(&self) -> usize {
        self.points.len()
    }

    /// The boundary as a row-major map.
    pub fn map(&self) -> Vec<bool> {
        let mut m = vec![false; self.width * self.height];
        for &(x, y) in &self.points {
            m[y as usize * self.width + x as usize] = true;
        }
        m
    }
}

/// How many pixels of `a` lie within Euclidean distance `r` of some pixel of `b`, i.e.
/// `sum(a * cv2.dilate(b, disk(r)))`. For each pixel of `a`, the rows `y - r ..= y + r` of `b`
/// are probed (nearest first) for the closest `b` pixel in that row by binary search.
pub fn count_within(a: &Boundary, b: &Boundary, r: usize) -> usize {
    let (Some(first), Some(last)) = (b.points.first(), b.points.last()) else {
        return 0;
    };
    let (by0, by1) = (first.1 as usize, last.1 as usize);
    // Row index into b.points (points are in raster order).
    let mut row_start = vec![0usize; by1 - by0 + 2];
    for &(_, y) in &b.points {
        row_start[y as usize - by0 + 1] += 1;
    }
    for i in 1..row_start.len() {
        row_start[i] += row_start[i - 1];
    }
    let xs: Vec<u32> = b.points.iter().map(|p| p.0).collect();
    let r2 = (r * r) as i64;
    let near_in_row = |yy: usize, x: u32| -> Option<i64> {
        let row = &xs[row_start[yy - by0]..row_start[yy - by0 + 1]];
        if row.is_empty() {
            return None;
        }
        let i = row.partition_point(|&v| v < x);
        let mut best = i64::MAX;
        if i < row.len() {
            best = (row[i] - x) as i64;
        }
        if i > 0 {
            best = best.min((x - row[i - 1]) as i64);
        }
        Some(best)
    };
    let mut count = 0;
    for &(x, y) in &a.points {
        let y = y as usize;
        if y + r < by0 || y > by1 + r {
            continue;
        }
        let mut hit = false;
        for d in 0..=r {
            let d2 = (d * d) as i64;
            for yy in [y.checked_sub(d), if d > 0 { Some(y + d) } else { None }]
                .into_iter()
                .flatten()
            {
                if yy < by0 || yy > by1 {
                    continue;
                }
                if let Some(dx) = near_in_row(yy, x) {
                    if dx * dx + d2 <= r2 {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                break;
            }
        }
        count += hit as usize;
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
    boundary_f_bits(&BitMask::from_mask(pred), &BitMask::from_mask(gt))
}

fn boundary_f_bits(pred: &BitMask, gt: &BitMask) -> f64 {
    let r = bound_pix(pred.width, pred.height);
    let bp = Boundary::of_bits(pred);
    let bg = Boundary::of_bits(gt);
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

    /// `_seg2bmap` transliterated pixel by pixel, for comparison with the packed version.
    fn naive_seg2bmap(m: &Mask) -> Vec<bool> {
        let (w, h) = (m.width, m.height);
        let at = |x: usize, y: usize| x < w && y < h && m.data[y * w + x];
        let mut b = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let s = at(x, y);
                b[y * w + x] = (s ^ at(x + 1, y)) | (s ^ at(x, y + 1)) | (s ^ at(x + 1, y + 1));
            }
        }
        for x in 0..w {
            b[(h - 1) * w + x] = at(x, h - 1) ^ at(x + 1, h - 1);
        }
        for y in 0..h {
            b[y * w + w - 1] = at(w - 1, y) ^ at(w - 1, y + 1);
        }
        b[h * w - 1] = false;
        b
    }

    #[test]
    fn packed_seg2bmap_equals_pixelwise() {
        for (i, &(w, h)) in [
            (1, 1),
            (1, 9),
            (9, 1),
            (63, 5),
            (64, 7),
            (65, 6),
            (130, 11),
            (200, 3),
        ]
        .iter()
        .enumerate()
        {
            for seed in 0..3u64 {
                let m = lcg_mask(w, h, seed * 31 + i as u64, 2);
                assert_eq!(
                    Boundary::of(&m).map(),
                    naive_seg2bmap(&m),
                    "{w}x{h} seed {seed}"
                );
                let full = Mask {
                    width: w,
                    height: h,
                    data: vec![true; w * h],
                };
                assert_eq!(
                    Boundary::of(&full).map(),
                    naive_seg2bmap(&full),
                    "{w}x{h} full"
                );
            }
        }
    }

    #[test]
    fn fast_dilation_equals_disk_scan() {
        for (i, &(w, h)) in [
            (31, 17),
            (64, 48),
            (97, 61),
            (20, 120),
            (1, 9),
            (9, 1),
            (150, 40),
        ]
        .iter()
        .enumerate()
        {
            for r in [1usize, 2, 3, 5, 8] {
                let a = Boundary::of(&lcg_mask(w, h, 10 + i as u64, 3));
                let b = Boundary::of(&lcg_mask(w, h, 100 + i as u64, 2));
                let naive = naive_disk_dilate(&b.map(), w, h, r);
                assert_eq!(dilate_disk(&b.map(), w, h, r), naive, "{w}x{h} r={r}");
                let want = a.map().iter().zip(&naive).filter(|(&p, &d)| p && d).count();
                assert_eq!(count_within(&a, &b, r), want, "{w}x{h} r={r}");
            }
        }
    }

    #[test]
    fn pack8_all_patterns() {
        for p in 0..256u64 {
            let c: Vec<bool> = (0..8).map(|i| (p >> i) & 1 == 1).collect();
            assert_eq!(pack8(&c), p);
        }
    }

    #[test]
    fn iou_counts() {
        let a = lcg_mask(130, 7, 5, 2);
        let b = lcg_mask(130, 7, 6, 2);
        let inter = a.data.iter().zip(&b.data).filter(|(&p, &q)| p && q).count();
        let uni = a.data.iter().zip(&b.data).filter(|(&p, &q)| p || q).count();
        assert_eq!(iou(&a, &b), inter as f64 / uni as f64);
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
