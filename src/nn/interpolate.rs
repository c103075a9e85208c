//! PyTorch-exact `F.interpolate` for NCHW tensors, computed on the tensor's own device.
//!
//! Every mode here is separable: the output is `Wh · x · Wwᵀ` with one small weight matrix per
//! axis (`[out, in]`), built on the host from the sizes only (never from the data) and applied by
//! two plain 2D matmuls on the device. The weights follow PyTorch's CPU kernels
//! (`aten/src/ATen/native/UpSample.h`, `UpSampleKernel.cpp`), computed in f32 like PyTorch does for
//! f32 inputs, so results agree with `torch.nn.functional.interpolate` to float rounding
//! (architecture.md §6.4-6.7). Nearest uses an index gather instead of a matmul (exact copies).
//!
//! Inputs in f16/bf16 are resized in f32 and cast back.

use crate::nn::ContiguousExt;
use candle_core::{DType, Device, Result, Tensor};
use std::sync::Mutex;

/// PyTorch's `area_pixel_compute_scale` for `align_corners=False` without a given scale factor.
fn scale_of(in_size: usize, out_size: usize) -> f32 {
    in_size as f32 / out_size as f32
}

/// Keys cubic convolution, A = -0.75 (PyTorch `cubic_convolution1` / `cubic_convolution2`).
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let cc1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)]
}

/// Row-major `[out, in]` weights of bicubic resampling, align_corners=False, no antialias.
fn bicubic_matrix(in_size: usize, out_size: usize) -> Vec<f32> {
    let scale = scale_of(in_size, out_size);
    let mut m = vec![0f32; out_size * in_size];
    let last = in_size as i64 - 1;
    for o in 0..out_size {
        // Cubic: no clamping of the source coordinate, only of the tap indices.
        let real = scale * (o as f32 + 0.5) - 0.5;
        let i0 = real.floor();
        let t = real - i0;
        let w = cubic_weights(t);
        for (k, wk) in w.iter().enumerate() {
            let idx = (i0 as i64 - 1 + k as i64).clamp(0, last) as usize;
            m[o * in_size + idx] += wk;
        }
    }
    m
}

/// Row-major `[out, in]` weights of bilinear resampling, align_corners=False, no antialias.
fn bilinear_matrix(in_size: usize, out_size: usize) -> Vec<f32> {
    let scale = scale_of(in_size, out_size);
    let mut m = vec![0f32; out_size * in_size];
    for o in 0..out_size {
        let real = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (real as usize).min(in_size - 1);
        let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
        let l1 = (real - i0 as f32).clamp(0.0, 1.0);
        let l0 = 1.0 - l1;
        m[o * in_size + i0] += l0;
        m[o * in_size + i1] += l1;
    }
    m
}

/// Row-major `[out, in]` weights of PyTorch's antialiased bilinear (`_upsample_bilinear2d_aa`):
/// a triangle filter whose support is stretched by the scale when downsampling, with each output's
/// weights normalized to sum to one.
fn bilinear_aa_matrix(in_size: usize, out_size: usize) -> Vec<f32> {
    let scale = scale_of(in_size, out_size);
    let support = if scale >= 1.0 { scale } else { 1.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let filter = |x: f32| {
        let x = x.abs();
        if x < 1.0 {
            1.0 - x
        } else {
            0.0
        }
    };
    let mut m = vec![0f32; out_size * in_size];
    for o in 0..out_size {
        let center = scale * (o as f32 + 0.5);
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let mut ws = Vec::with_capacity(xmax.saturating_sub(xmin));
        let mut total = 0f32;
        for j in xmin..xmax {
            let w = filter((j as f32 - center + 0.5) * invscale);
            ws.push(w);
            total += w;
        }
        for (k, w) in ws.iter().enumerate() {
            let w = if total != 0.0 { w / total } else { 0.0 };
            m[o * in_size + xmin + k] = w;
        }
    }
    m
}

/// PyTorch 'nearest' source indices: `min(floor(dst * in/out), in-1)` with an f32 scale.
fn nearest_indices(in_size: usize, out_size: usize) -> Vec<u32> {
    if out_size == in_size {
        return (0..out_size as u32).collect();
    }
    if out_size == 2 * in_size {
        return (0..out_size as u32).map(|o| o >> 1).collect();
    }
    let scale = scale_of(in_size, out_size);
    (0..out_size)
        .map(|o| ((o as f32 * scale).floor() as usize).min(in_size - 1) as u32)
        .collect()
}

fn check_sizes(
    x: &Tensor,
    out_hw: (usize, usize),
    what: &str,
) -> Result<(usize, usize, usize, usize)> {
    let (b, c, h, w) = x.dims4()?;
    if h == 0 || w == 0 || out_hw.0 == 0 || out_hw.1 == 0 {
        candle_core::bail!("{what}: cannot resize {h}x{w} to {}x{}", out_hw.0, out_hw.1)
    }
    Ok((b, c, h, w))
}

/// Which resampling a cached matrix belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Bicubic,
    Bilinear,
    BilinearAa,
    Nearest,
}

type CacheKey = (Kind, usize, usize, &'static str);

/// Resampling weights (and nearest indices) already on a device, per (kind, in, out, dtype) and
/// device. Building them on the host and uploading them on every call made each resize a
/// host-to-device copy, which stalls the CUDA stream; a tracked video only ever uses a handful of
/// sizes.
///
/// Process-wide on purpose, keyed by device: it memoizes constants that are a pure function of
/// the key (the same matrix whoever asks), so it decides nothing and two sessions cannot observe
/// each other through it; at worst one session's sizes evict another's and the next call uploads
/// again. Owning it in a layer would not work: the resize functions are free functions that the
/// tracker and the heads call with sizes only known at run time.
static CACHE: Mutex<Vec<(CacheKey, Tensor)>> = Mutex::new(Vec::new());
const CACHE_MAX: usize = 64;

/// The cached tensor for `key` on `dev`, or the one `build` makes (then cached).
fn cached(key: CacheKey, dev: &Device, build: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    {
        let cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, t)) = cache
            .iter()
            .find(|(k, t)| *k == key && t.device().same_device(dev))
        {
            return Ok(t.clone());
        }
    }
    let t = build()?;
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= CACHE_MAX {
        cache.clear();
    }
    cache.push((key, t.clone()));
    Ok(t)
}

/// `[in, out]` (transposed, contiguous) weights of `kind` in `dtype` on `dev`.
fn weights_t(kind: Kind, n_in: usize, n_out: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    cached((kind, n_in, n_out, dtype.as_str()), dev, || {
        let m = match kind {
            Kind::Bicubic => bicubic_matrix(n_in, n_out),
            Kind::Bilinear => bilinear_matrix(n_in, n_out),
            Kind::BilinearAa => bilinear_aa_matrix(n_in, n_out),
            Kind::Nearest => candle_core::bail!("nearest has indices, not weights"),
        };
        Tensor::from_vec(m, (n_out, n_in), dev)?
            .to_dtype(dtype)?
            .t()?
            .contiguous_fast()
    })
}

/// Apply the `kind` weights along H and W: x: [B,C,H,W] -> [B,C,out_h,out_w].
fn apply_separable(x: &Tensor, kind: Kind, out_hw: (usize, usize)) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = out_hw;
    let orig = x.dtype();
    let work = match orig {
        DType::F32 | DType::F64 => orig,
        _ => DType::F32,
    };
    let dev = x.device();
    let x = x.to_dtype(work)?;
    // two dense products (counted as such: they run as GEMMs, zeros and all)
    let counted = crate::nn::flops::Kind::Matmul;
    crate::nn::flops::add_matmul(counted, 1, b * c * h, w, ow);
    crate::nn::flops::add_matmul(counted, 1, b * c * ow, h, oh);
    // Width pass: [B*C*H, W] @ [W, out_w]
    let ww_t = weights_t(kind, w, ow, work, dev)?;
    let y = x.reshape((b * c * h, w))?.matmul(&ww_t)?;
    // Height pass on the transposed layout: [B*C*out_w, H] @ [H, out_h]
    let y = y
        .reshape((b * c, h, ow))?
        .transpose(1, 2)?
        .contiguous_fast()?;
    let wh_t = weights_t(kind, h, oh, work, dev)?;
    let y = y.reshape((b * c * ow, h))?.matmul(&wh_t)?;
    let y = y
        .reshape((b, c, ow, oh))?
        .transpose(2, 3)?
        .contiguous_fast()?;
    y.to_dtype(orig)
}

/// `F.interpolate(x, size=out_hw, mode="bicubic", align_corners=False)`.
/// x: [B, C, H, W] -> [B, C, out_h, out_w]
pub fn bicubic(x: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    check_sizes(x, out_hw, "bicubic")?;
    apply_separable(x, Kind::Bicubic, out_hw)
}

/// `F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)` (no antialias).
/// x: [B, C, H, W] -> [B, C, out_h, out_w]
pub fn bilinear(x: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    check_sizes(x, out_hw, "bilinear")?;
    apply_separable(x, Kind::Bilinear, out_hw)
}

/// `F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)`.
/// x: [B, C, H, W] -> [B, C, out_h, out_w]
pub fn bilinear_antialias(x: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    check_sizes(x, out_hw, "bilinear_antialias")?;
    apply_separable(x, Kind::BilinearAa, out_hw)
}

/// `F.interpolate(x, size=out_hw, mode="nearest")`. x: [B, C, H, W] -> [B, C, out_h, out_w]
pub fn nearest(x: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    let (_, _, h, w) = check_sizes(x, out_hw, "nearest")?;
    let dev = x.device();
    let mut y = x.clone();
    let indices = |n_in: usize, n_out: usize| {
        cached((Kind::Nearest, n_in, n_out, "u32"), dev, || {
            Tensor::from_vec(nearest_indices(n_in, n_out), n_out, dev)
        })
    };
    if out_hw.0 != h {
        y = y.index_select(&indices(h, out_hw.0)?, 2)?;
    }
    if out_hw.1 != w {
        y = y.index_select(&indices(w, out_hw.1)?, 3)?;
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weight_rows_sum_to_one() {
        for (i, o) in [(7usize, 64usize), (64, 7), (10, 13), (1, 5), (1024, 256)] {
            for m in [
                bicubic_matrix(i, o),
                bilinear_matrix(i, o),
                bilinear_aa_matrix(i, o),
            ] {
                for r in 0..o {
                    let s: f32 = m[r * i..(r + 1) * i].iter().sum();
                    assert!((s - 1.0).abs() < 1e-5, "{i}->{o} row {r} sums to {s}");
                }
            }
        }
    }

    #[test]
    fn nearest_doubling_repeats() {
        let x = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 2, 3))
            .unwrap();
        let y = nearest(&x, (4, 6)).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(
            v,
            vec![
                0., 0., 1., 1., 2., 2., 0., 0., 1., 1., 2., 2., 3., 3., 4., 4., 5., 5., 3., 3., 4.,
                4., 5., 5.
            ]
        );
    }

    /// Every case of tests/fixtures/interp/interp.safetensors (written by
    /// tests/reference/make_interp_fixtures.py from torch.nn.functional.interpolate).
    #[test]
    fn matches_torch_interpolate_fixture() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/interp/interp.safetensors");
        let t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let mut cases: Vec<&String> = t.keys().filter(|k| k.ends_with(".input")).collect();
        cases.sort();
        assert!(cases.len() >= 40, "only {} cases", cases.len());
        let mut seen = std::collections::HashSet::new();
        for key in cases {
            let name = key.trim_end_matches(".input");
            let x = t[key].to_dtype(DType::F32).unwrap();
            let want = &t[&format!("{name}.output")];
            let (_, _, oh, ow) = want.dims4().unwrap();
            let mode = name.split('.').next().unwrap();
            let got = match mode {
                "bicubic" => bicubic(&x, (oh, ow)),
                "bilinear" => bilinear(&x, (oh, ow)),
                "nearest" => nearest(&x, (oh, ow)),
                "bilinear_aa" => bilinear_antialias(&x, (oh, ow)),
                other => panic!("unknown mode {other}"),
            }
            .unwrap();
            assert_eq!(got.dims(), want.dims(), "{name}");
            let d = crate::compare::diff(&got, want).unwrap();
            let (rel, max) = (d.rel_l2(), d.max_abs);
            eprintln!("{name}: rel L2 {rel:.2e}, max abs {max:.2e}");
            assert!(rel <= 1e-6, "{name}: rel L2 {rel:.3e}");
            seen.insert(mode.to_string());
        }
        assert_eq!(seen.len(), 4, "modes covered: {seen:?}");
    }

    #[test]
    fn zero_size_is_an_error() {
        let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(bilinear(&x, (0, 3)).is_err());
    }
}
