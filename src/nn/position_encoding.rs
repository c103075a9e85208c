//! Position encodings shared by both models (`sam2/modeling/position_encoding.py`):
//! the 2D sine encoding of the FPN neck and the memory encoder, the random-Fourier encoding of
//! the prompt encoder, and the 1D sine encoding of object-pointer temporal positions.
//!
//! The sine tables depend only on the map size, so they are computed once on the host in f32,
//! exactly as PyTorch does, and uploaded; the per-call work is a cached tensor.

use crate::nn::ContiguousExt;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::sync::Mutex;

/// `PositionEmbeddingSine(num_pos_feats, normalize=True, scale=2π, temperature)`.
#[derive(Debug)]
pub struct PositionEmbeddingSine {
    /// Half the output channels (`num_pos_feats // 2` in PyTorch).
    half: usize,
    temperature: f64,
    cache: Mutex<HashMap<(usize, usize, DeviceKey), Tensor>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DeviceKey {
    Cpu,
    Cuda(usize),
    Other,
}

fn device_key(d: &Device) -> DeviceKey {
    match d.location() {
        candle_core::DeviceLocation::Cpu => DeviceKey::Cpu,
        candle_core::DeviceLocation::Cuda { gpu_id } => DeviceKey::Cuda(gpu_id),
        _ => DeviceKey::Other,
    }
}

impl PositionEmbeddingSine {
    /// `num_pos_feats` is the number of output channels (256 for the neck, 64 for memories).
    pub fn new(num_pos_feats: usize, temperature: f64) -> Self {
        assert!(
            num_pos_feats.is_multiple_of(4),
            "sine PE needs a multiple of 4 channels"
        );
        Self {
            half: num_pos_feats / 2,
            temperature,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Host table `[2F, H, W]`, channel order `[pos_y (F), pos_x (F)]`, interleaved sin/cos.
    pub fn table(&self, h: usize, w: usize) -> Vec<f32> {
        let f = self.half;
        let scale = 2.0 * std::f32::consts::PI;
        let eps = 1e-6f32;
        let dim_t: Vec<f32> = (0..f)
            .map(|i| (self.temperature as f32).powf((2 * (i / 2)) as f32 / f as f32))
            .collect();
        let mut out = vec![0f32; 2 * f * h * w];
        for c in 0..f {
            for y in 0..h {
                let ye = (y + 1) as f32 / (h as f32 + eps) * scale;
                let vy = ye / dim_t[c];
                let vy = if c % 2 == 0 { vy.sin() } else { vy.cos() };
                for x in 0..w {
                    let xe = (x + 1) as f32 / (w as f32 + eps) * scale;
                    let vx = xe / dim_t[c];
                    let vx = if c % 2 == 0 { vx.sin() } else { vx.cos() };
                    out[(c * h + y) * w + x] = vy;
                    out[((f + c) * h + y) * w + x] = vx;
                }
            }
        }
        out
    }

    /// The encoding for a `[B, C, H, W]` map: `[B, 2F, H, W]` in f32 on the map's device.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _c, h, w) = x.dims4()?;
        let pe = self.encoding(h, w, x.device())?;
        pe.unsqueeze(0)?
            .broadcast_as((b, 2 * self.half, h, w))?
            .contiguous_fast()
    }

    /// The `[2F, H, W]` encoding on `device`, cached per size.
    pub fn encoding(&self, h: usize, w: usize, device: &Device) -> Result<Tensor> {
        let key = (h, w, device_key(device));
        let mut cache = self.cache.lock().expect("sine PE cache poisoned");
        if let Some(t) = cache.get(&key) {
            return Ok(t.clone());
        }
        let t = Tensor::from_vec(self.table(h, w), (2 * self.half, h, w), device)?;
        cache.insert(key, t.clone());
        Ok(t)
    }
}

/// `PositionEmbeddingRandom`: random-Fourier features with the checkpoint's Gaussian matrix.
#[derive(Debug, Clone)]
pub struct PositionEmbeddingRandom {
    /// `[2, num_pos_feats]`
    gaussian: Tensor,
}

impl PositionEmbeddingRandom {
    /// Loads `positional_encoding_gaussian_matrix` (`[2, embed_dim/2]`).
    pub fn new(num_pos_feats: usize, vb: VarBuilder) -> Result<Self> {
        let gaussian = vb.get((2, num_pos_feats), "positional_encoding_gaussian_matrix")?;
        Ok(Self { gaussian })
    }

    /// coords in [0,1]: `[..., 2]` -> `[..., 2*num_pos_feats]` (`[sin | cos]`).
    fn pe_encoding(&self, coords: &Tensor) -> Result<Tensor> {
        let coords = ((coords.to_dtype(DType::F32)? * 2.0)? - 1.0)?;
        let coords = coords.broadcast_matmul(&self.gaussian.to_dtype(DType::F32)?)?;
        let coords = (coords * (2.0 * std::f64::consts::PI))?;
        Tensor::cat(&[coords.sin()?, coords.cos()?], D::Minus1)
    }

    /// Dense encoding of an `h x w` grid at pixel centres: `[C, h, w]`.
    pub fn grid(&self, h: usize, w: usize, device: &Device) -> Result<Tensor> {
        let mut xy = Vec::with_capacity(h * w * 2);
        for i in 0..h {
            for j in 0..w {
                xy.push((j as f32 + 0.5) / w as f32);
                xy.push((i as f32 + 0.5) / h as f32);
            }
        }
        let coords = Tensor::from_vec(xy, (h, w, 2), device)?;
        self.pe_encoding(&coords)?
            .permute((2, 0, 1))?
            .contiguous_fast()
    }

    /// Points in input-image pixels: `[B, N, 2]` (x, y) -> `[B, N, C]`.
    pub fn forward_with_coords(&self, coords: &Tensor, image_hw: (usize, usize)) -> Result<Tensor> {
        let x = coords
            .narrow(D::Minus1, 0, 1)?
            .affine(1.0 / image_hw.1 as f64, 0.0)?;
        let y = coords
            .narrow(D::Minus1, 1, 1)?
            .affine(1.0 / image_hw.0 as f64, 0.0)?;
        self.pe_encoding(&Tensor::cat(&[x, y], D::Minus1)?)
    }
}

/// `get_1d_sine_pe`: positions `[N]` -> `[N, dim]` as `[sin | cos]` (concatenated, not interleaved).
pub fn get_1d_sine_pe(pos: &Tensor, dim: usize, temperature: f64) -> Result<Tensor> {
    let pe_dim = dim / 2;
    let dim_t: Vec<f32> = (0..pe_dim)
        .map(|i| (temperature as f32).powf((2 * (i / 2)) as f32 / pe_dim as f32))
        .collect();
    let dim_t = Tensor::from_vec(dim_t, (1, pe_dim), pos.device())?;
    let p = pos.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let p = p.broadcast_div(&dim_t)?;
    Tensor::cat(&[p.sin()?, p.cos()?], D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_table_layout() {
        let pe = PositionEmbeddingSine::new(8, 10000.0);
        let t = pe.table(2, 3);
        // channel 0 is sin of y at frequency 1: y=1 -> sin(1/(2+1e-6)*2π)
        let want = ((1.0f32 / (2.0 + 1e-6)) * 2.0 * std::f32::consts::PI).sin();
        assert!((t[0] - want).abs() < 1e-6);
        // channel 4 (first x channel) at x=2 (third column), y=0
        let want_x = ((3.0f32 / (3.0 + 1e-6)) * 2.0 * std::f32::consts::PI).sin();
        assert!((t[4 * 6 + 2] - want_x).abs() < 1e-6);
    }

    #[test]
    fn one_d_pe_is_sin_then_cos() -> Result<()> {
        let pos = Tensor::new(&[0f32, 1.0], &Device::Cpu)?;
        let pe = get_1d_sine_pe(&pos, 4, 10000.0)?.to_vec2::<f32>()?;
        assert_eq!(pe[0], vec![0.0, 0.0, 1.0, 1.0]);
        assert!((pe[1][0] - 1f32.sin()).abs() < 1e-6);
        assert!((pe[1][2] - 1f32.cos()).abs() < 1e-6);
        Ok(())
    }
}
