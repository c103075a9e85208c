//! The official normalisation of a resized frame and the model input tensor built from it:
//! `x / 255.0` in float64, stored as float32, then `(x - mean) / std` in float32 with the ImageNet
//! mean and standard deviation (`sam2/utils/misc.py`, `_load_img_as_tensor` and
//! `load_video_frames_from_jpg_images`). [`rgb_to_input_tensor`] takes already-decoded RGB, so
//! tests can feed Pillow's decode and isolate JPEG decoding.

use super::resize::resize_to_square;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// ImageNet mean the official predictor normalizes with (stored as float32 there).
pub const IMG_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation the official predictor normalizes with (float32 there).
pub const IMG_STD: [f64; 3] = [0.229, 0.224, 0.225];

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
    let resized = resize_to_square(rgb, w, h, image_size)?;
    normalized_input(&resized, image_size, device)
}

#[cfg(test)]
mod tests {
    use super::*;

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
