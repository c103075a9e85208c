//! Mask post-processing of the official video predictor (architecture.md §4.3).
//!
//! `fill_holes_in_mask_scores` (`sam2/utils/misc.py`) turns small background regions of the
//! low-res mask logits into foreground before the logits are stored and upsampled. Upstream it
//! runs a CUDA kernel (`sam2/csrc/connected_components.cu`): 2x2-block union-find labelling whose
//! neighbour tests cover all eight neighbours of every pixel, i.e. exact 8-connected components,
//! and per-pixel component areas. Here the same components are found on the host with a flood
//! fill; masks are small (S/4 x S/4), so the copy is cheap.

use candle_core::{DType, Result, Tensor};

/// Score given to filled pixels (upstream: `torch.where(is_hole, 0.1, mask)`).
pub const HOLE_FILL_SCORE: f32 = 0.1;

/// Set to `0.1` every pixel of a background component (8-connected pixels with score `<= 0`;
/// NaN is not background) whose area is at most `max_area`. Other pixels are unchanged. Regions
/// touching the image border are filled too when small enough, as upstream.
///
/// mask: `[B, 1, h, w]` logits (any float dtype; filled in f32 and cast back) -> same shape,
/// dtype and device.
///
/// Upstream asserts `max_area > 0`; so does this (an error). The SAM 2.1 kernel also rejects odd
/// `h` or `w` (the Python wrapper then silently skips the step), while the EdgeTAM package falls
/// back to OpenCV's 8-connected labelling for those and for CPU tensors; this function handles
/// any size like the latter. Masks of the video predictor are even-sized anyway (S/4, S a
/// multiple of 32).
pub fn fill_holes_in_mask_scores(mask: &Tensor, max_area: usize) -> Result<Tensor> {
    if max_area == 0 {
        candle_core::bail!("fill_holes_in_mask_scores: max_area must be positive");
    }
    let (b, c, h, w) = mask.dims4()?;
    if c != 1 {
        candle_core::bail!(
            "fill_holes_in_mask_scores: expected [B, 1, h, w], got {:?}",
            mask.dims()
        );
    }
    let dtype = mask.dtype();
    let mut data = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut scratch = FloodFill::new(h, w);
    for plane in data.chunks_exact_mut(h * w) {
        scratch.fill_small_background(plane, max_area);
    }
    Tensor::from_vec(data, (b, c, h, w), mask.device())?.to_dtype(dtype)
}

/// Reusable buffers for labelling one `h x w` plane.
struct FloodFill {
    h: usize,
    w: usize,
    visited: Vec<bool>,
    stack: Vec<usize>,
    component: Vec<usize>,
}

impl FloodFill {
    fn new(h: usize, w: usize) -> Self {
        FloodFill {
            h,
            w,
            visited: vec![false; h * w],
            stack: Vec::new(),
            component: Vec::new(),
        }
    }

    /// plane: `[h * w]` scores, modified in place.
    fn fill_small_background(&mut self, plane: &mut [f32], max_area: usize) {
        let (h, w) = (self.h, self.w);
        let is_bg = |v: f32| v <= 0.0;
        self.visited.iter_mut().for_each(|v| *v = false);
        for start in 0..h * w {
            if self.visited[start] || !is_bg(plane[start]) {
                continue;
            }
            // Collect the 8-connected background component containing `start`.
            self.component.clear();
            self.stack.clear();
            self.visited[start] = true;
            self.stack.push(start);
            while let Some(p) = self.stack.pop() {
                self.component.push(p);
                let (y, x) = (p / w, p % w);
                let y0 = y.saturating_sub(1);
                let y1 = (y + 1).min(h - 1);
                let x0 = x.saturating_sub(1);
                let x1 = (x + 1).min(w - 1);
                for ny in y0..=y1 {
                    for nx in x0..=x1 {
                        let q = ny * w + nx;
                        if !self.visited[q] && is_bg(plane[q]) {
                            self.visited[q] = true;
                            self.stack.push(q);
                        }
                    }
                }
            }
            if self.component.len() <= max_area {
                for &p in &self.component {
                    plane[p] = HOLE_FILL_SCORE;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn run(plane: &[f32], h: usize, w: usize, max_area: usize) -> Vec<f32> {
        let t = Tensor::from_vec(plane.to_vec(), (1, 1, h, w), &Device::Cpu).unwrap();
        fill_holes_in_mask_scores(&t, max_area)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn diagonal_pixels_are_one_component() {
        // Two background pixels touching only at a corner: one component of area 2 under
        // 8-connectivity, so max_area 1 keeps both and max_area 2 fills both.
        #[rustfmt::skip]
        let m = [
            1.0, 1.0, 1.0, 1.0,
            1.0, -1.0, 1.0, 1.0,
            1.0, 1.0, -1.0, 1.0,
            1.0, 1.0, 1.0, 1.0,
        ];
        assert_eq!(run(&m, 4, 4, 1), m.to_vec());
        let filled = run(&m, 4, 4, 2);
        assert_eq!(filled[5], HOLE_FILL_SCORE);
        assert_eq!(filled[10], HOLE_FILL_SCORE);
        assert_eq!(filled.iter().filter(|&&v| v == 1.0).count(), 14);
    }

    #[test]
    fn zero_is_background_nan_is_not_and_border_regions_fill() {
        #[rustfmt::skip]
        let m = [
            0.0, 2.0, 2.0,
            2.0, 2.0, f32::NAN,
            -5.0, -5.0, -5.0,
        ];
        let out = run(&m, 3, 3, 1);
        assert_eq!(out[0], HOLE_FILL_SCORE); // a border pixel scoring exactly 0
        assert!(out[5].is_nan());
        assert_eq!(&out[6..], &[-5.0, -5.0, -5.0]); // area 3 > 1
        let out = run(&m, 3, 3, 3);
        assert_eq!(&out[6..], &[HOLE_FILL_SCORE; 3]);
    }

    #[test]
    fn odd_sizes_batches_and_bad_inputs() {
        let m: Vec<f32> = (0..2 * 5 * 7)
            .map(|i| if i % 11 == 0 { -1.0 } else { 1.0 })
            .collect();
        let t = Tensor::from_vec(m, (2, 1, 5, 7), &Device::Cpu).unwrap();
        let out = fill_holes_in_mask_scores(&t, 1).unwrap();
        let v: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        // Seven isolated background pixels (four in the first plane, three in the second).
        assert!(v.iter().all(|&x| x == 1.0 || x == HOLE_FILL_SCORE));
        assert_eq!(v.iter().filter(|&&x| x == HOLE_FILL_SCORE).count(), 7);
        assert!(fill_holes_in_mask_scores(&t, 0).is_err());
        let t3 = Tensor::zeros((1, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(fill_holes_in_mask_scores(&t3, 8).is_err());
    }
}
