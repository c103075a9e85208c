//! `vosbench probe --check-kernels`: vosbench's elementwise CUDA kernels against the unfused
//! candle path on the same device and inputs, in f32, f16 and bf16, at the models' shapes and
//! odd sizes, timing both at the real shapes. The fused attention kernel has its own check
//! (`attention.rs`), which `--check-kernels` runs too.
//!
//! - bias add (`cuda::bias_add`, vectorised and one-element paths) against `broadcast_add`,
//!   and bias + ReLU / bias + erf-GELU in one pass against `broadcast_add` then candle's `relu` /
//!   `gelu_erf`: the same rounding, so the tolerance is zero;
//! - strided -> contiguous copies (`cuda::strided_copy`, vector and element moves) against
//!   candle's copy: bit-exact, tolerance zero;
//! - LayerNorm2d (`cuda::layer_norm2d`, alone and with the GELU after it) against the unfused
//!   f32 path: sums in another order, so last-bit f32 differences and, after rounding, one
//!   unit of f16/bf16;
//! - Hiera's q-pool (`cuda::max_pool`) against pairwise maxima of views: bit-exact;
//! - RoPE (`cuda::rope`) against `nn::rope::rotate_leading` over `rotate`/`rotate_repeated`
//!   (copy, cast to f32, candle's `rope_i`, cast back, concatenation): the same f32 formula,
//!   where the compiler may contract a product into a fused multiply-add differently, so a
//!   value can differ in its last f32 bit and, rarely, by one unit of the 16-bit types.

use super::attention::time_ms;
use crate::cuda::bias_add::{self, Epilogue};
use crate::cuda::rope as rope_kernel;
use crate::nn::norm::LayerNorm2d;
use crate::nn::pool;
use crate::nn::rope::{self, AxialRope};
use candle_core::{DType, Device, Result, Tensor};

/// One case of [`check`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelCheckRow {
    pub kernel: String,
    /// f32, f16 or bf16
    pub dtype: String,
    pub shape: Vec<usize>,
    pub rel_l2: f64,
    pub max_abs: f64,
    pub tolerance: f64,
    pub ok: bool,
    /// mean ms per call over 5 calls after one warm-up (timed cases only)
    pub fused_ms: Option<f64>,
    pub unfused_ms: Option<f64>,
}

const DTYPES: [(DType, &str); 3] = [
    (DType::F32, "f32"),
    (DType::F16, "f16"),
    (DType::BF16, "bf16"),
];

/// Every case on `dev` (a CUDA device).
pub fn check(dev: &Device, timed: bool) -> Result<Vec<KernelCheckRow>> {
    let mut rows = Vec::new();
    dev.set_seed(7)?;
    // bias add: [rows, cols]; 256 and 64 columns take the vector path, 77 the one-element path
    for (shape, time_it) in [
        (vec![28736, 256], true),
        (vec![4096, 2048], true),
        (vec![3, 1000, 64], false),
        (vec![100, 77], false),
    ] {
        let cols = *shape.last().unwrap_or(&1);
        let x = Tensor::randn(0f32, 1f32, shape.as_slice(), dev)?;
        let b = Tensor::randn(0f32, 1f32, cols, dev)?;
        for (dtype, name) in DTYPES {
            let (x, b) = (x.to_dtype(dtype)?, b.to_dtype(dtype)?);
            let fused = |x: &Tensor| -> Result<Tensor> {
                let y = x.copy()?;
                bias_add::add_bias_inplace(&y, &b)?;
                Ok(y)
            };
            let got = fused(&x)?;
            let want = x.broadcast_add(&b)?;
            let (fused_ms, unfused_ms) = if timed && time_it {
                // the fused time includes the copy that gives it a fresh tensor to write
                (
                    Some(time_ms(dev, || fused(&x).map(|_| ()))?),
                    Some(time_ms(dev, || x.broadcast_add(&b).map(|_| ()))?),
                )
            } else {
                (None, None)
            };
            rows.push(row(
                "bias_add", name, &shape, &got, &want, 0.0, fused_ms, unfused_ms,
            )?);
            // bias + activation in one pass (vector path only) against the two candle ops
            if !bias_add::supports_epilogue(&x, &b) {
                continue;
            }
            for (kernel, epilogue) in [
                ("bias_relu", Epilogue::Relu),
                ("bias_gelu", Epilogue::GeluErf),
            ] {
                let fused = |x: &Tensor| -> Result<Tensor> {
                    let y = x.copy()?;
                    bias_add::add_bias_act_inplace(&y, &b, epilogue)?;
                    Ok(y)
                };
                let unfused = |x: &Tensor| -> Result<Tensor> {
                    let y = x.broadcast_add(&b)?;
                    match epilogue {
                        Epilogue::Relu => y.relu(),
                        _ => y.gelu_erf(),
                    }
                };
                let (got, want) = (fused(&x)?, unfused(&x)?);
                let (fused_ms, unfused_ms) = if timed && time_it {
                    (
                        Some(time_ms(dev, || fused(&x).map(|_| ()))?),
                        Some(time_ms(dev, || unfused(&x).map(|_| ()))?),
                    )
                } else {
                    (None, None)
                };
                rows.push(row(
                    kernel, name, &shape, &got, &want, 0.0, fused_ms, unfused_ms,
                )?);
            }
        }
    }
    // RoPE: memory attention's keys (7 frames of 64x64 tokens, 64 object pointers), its queries,
    // and a small case with several heads, a repeated 5x5 table and excluded tokens
    for (shape, grid, exclude, repeat, time_it) in [
        ([1, 1, 28736, 256], [64, 64], 64, true, true),
        ([1, 1, 4096, 256], [64, 64], 0, false, true),
        ([2, 3, 55, 64], [5, 5], 5, true, false),
    ] {
        let axial = AxialRope::new(shape[3], 10000.0)?;
        let table = axial.table(grid[0], grid[1], dev)?;
        let x = (Tensor::randn(0f32, 1f32, &shape, dev)? * 3.0)?;
        for (dtype, name) in DTYPES {
            let x = x.to_dtype(dtype)?;
            let unfused = |x: &Tensor| {
                rope::rotate_leading(x, exclude, |x| {
                    if repeat {
                        rope::rotate_repeated(x, &table)
                    } else {
                        rope::rotate(x, &table)
                    }
                })
            };
            let n_rope = shape[2] - exclude;
            let got = rope_kernel::rotate(&x, &table.cos, &table.sin, n_rope)?;
            let want = unfused(&x)?;
            let tol = match dtype {
                DType::F32 => 1e-6,
                DType::F16 => 1e-3,
                _ => 8e-3,
            };
            let (fused_ms, unfused_ms) = if timed && time_it {
                (
                    Some(time_ms(dev, || {
                        rope_kernel::rotate(&x, &table.cos, &table.sin, n_rope).map(|_| ())
                    })?),
                    Some(time_ms(dev, || unfused(&x).map(|_| ()))?),
                )
            } else {
                (None, None)
            };
            rows.push(row(
                "rope", name, &shape, &got, &want, tol, fused_ms, unfused_ms,
            )?);
        }
    }
    // strided copies (`cuda::strided_copy`, 16/8-byte moves where the layout allows, else one
    // element) against candle's copy: Hiera-T's window partition of its stage-1 map (channels
    // innermost), a head split, a narrowed view at an odd offset (element moves), a transpose
    // with a strided inside (element moves)
    for (shape, time_it) in [
        (vec![1, 32, 8, 32, 8, 96], true),
        (vec![1, 4096, 4, 96], true),
        (vec![3, 37, 10], false),
        (vec![64, 48], false),
    ] {
        let x = Tensor::randn(0f32, 1f32, shape.as_slice(), dev)?;
        for (dtype, name) in DTYPES {
            let x = x.to_dtype(dtype)?;
            let view = match shape.len() {
                6 => x.permute((0, 1, 3, 2, 4, 5))?,
                4 => x.transpose(1, 2)?,
                3 => x.narrow(1, 1, 35)?.narrow(2, 1, 8)?,
                _ => x.t()?,
            };
            let got = crate::cuda::strided_copy::contiguous(&view)?;
            let want = view.contiguous()?;
            let (fused_ms, unfused_ms) = if timed && time_it {
                (
                    Some(time_ms(dev, || {
                        crate::cuda::strided_copy::contiguous(&view).map(|_| ())
                    })?),
                    Some(time_ms(dev, || view.contiguous().map(|_| ()))?),
                )
            } else {
                (None, None)
            };
            let shown: Vec<usize> = view.dims().to_vec();
            rows.push(row(
                "strided_copy",
                name,
                &shown,
                &got,
                &want,
                0.0,
                fused_ms,
                unfused_ms,
            )?);
        }
    }
    // LayerNorm2d (with and without the GELU after it) against the unfused f32 path: the mask
    // downsampler's first and last levels, the memory encoder's CXBlock map, an odd size
    for (shape, time_it) in [
        ([1, 4, 512, 512], true),
        ([1, 256, 64, 64], true),
        ([2, 24, 7, 9], false),
    ] {
        let c = shape[1];
        let x = Tensor::randn(0f32, 1f32, &shape, dev)?.affine(2.0, 0.5)?;
        let w = Tensor::randn(0f32, 1f32, c, dev)?.affine(0.1, 1.0)?;
        let b = (Tensor::randn(0f32, 1f32, c, dev)? * 0.1)?;
        for (dtype, name) in DTYPES {
            let (x, w, b) = (x.to_dtype(dtype)?, w.to_dtype(dtype)?, b.to_dtype(dtype)?);
            let ln = LayerNorm2d::from_parts(w.clone(), b.clone(), 1e-6);
            let tol = match dtype {
                DType::F32 => 1e-6,
                DType::F16 => 1e-3,
                _ => 8e-3,
            };
            for gelu in [false, true] {
                let fused = || crate::cuda::layer_norm2d::layer_norm2d(&x, &w, &b, 1e-6, gelu);
                let unfused = || -> Result<Tensor> {
                    let y = ln.forward_unfused(&x)?;
                    if gelu {
                        y.gelu_erf()
                    } else {
                        Ok(y)
                    }
                };
                let (got, want) = (fused()?, unfused()?);
                let (fused_ms, unfused_ms) = if timed && time_it {
                    (
                        Some(time_ms(dev, || fused().map(|_| ()))?),
                        Some(time_ms(dev, || unfused().map(|_| ()))?),
                    )
                } else {
                    (None, None)
                };
                let kernel = if gelu { "ln2d_gelu" } else { "ln2d" };
                rows.push(row(
                    kernel, name, &shape, &got, &want, tol, fused_ms, unfused_ms,
                )?);
            }
        }
    }
    // q-pool: Hiera-T's stage-1 map and a 2x3 window over an odd map (floor), bit-exact
    for (shape, stride, time_it) in [
        ([1, 256, 256, 96], (2, 2), true),
        ([2, 7, 10, 16], (2, 3), false),
    ] {
        let x = Tensor::randn(0f32, 1f32, &shape, dev)?;
        for (dtype, name) in DTYPES {
            let x = x.to_dtype(dtype)?;
            let got = crate::cuda::max_pool::max_pool_nhwc(&x, stride)?;
            let want = pool::max_pool_nhwc_unfused(&x, stride)?;
            let (fused_ms, unfused_ms) = if timed && time_it {
                (
                    Some(time_ms(dev, || {
                        crate::cuda::max_pool::max_pool_nhwc(&x, stride).map(|_| ())
                    })?),
                    Some(time_ms(dev, || {
                        pool::max_pool_nhwc_unfused(&x, stride).map(|_| ())
                    })?),
                )
            } else {
                (None, None)
            };
            rows.push(row(
                "max_pool", name, &shape, &got, &want, 0.0, fused_ms, unfused_ms,
            )?);
        }
    }
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
fn row(
    kernel: &str,
    dtype: &str,
    shape: &[usize],
    got: &Tensor,
    want: &Tensor,
    tolerance: f64,
    fused_ms: Option<f64>,
    unfused_ms: Option<f64>,
) -> Result<KernelCheckRow> {
    let diff = crate::compare::diff(&got.to_dtype(DType::F32)?, &want.to_dtype(DType::F32)?)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let rel_l2 = diff.rel_l2();
    Ok(KernelCheckRow {
        kernel: kernel.into(),
        dtype: dtype.into(),
        shape: shape.to_vec(),
        rel_l2,
        max_abs: diff.max_abs,
        tolerance,
        ok: rel_l2.is_finite() && rel_l2 <= tolerance,
        fused_ms,
        unfused_ms,
    })
}

/// The check as a table.
pub fn render_check(rows: &[KernelCheckRow]) -> String {
    let mut s = format!(
        "{:<9} {:<5} {:>20} {:>10} {:>10} {:>8} {:>4} {:>10} {:>11}\n",
        "kernel", "dtype", "shape", "rel L2", "max abs", "tol", "ok", "fused ms", "unfused ms"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in rows {
        s += &format!(
            "{:<9} {:<5} {:>20} {:>10.2e} {:>10.2e} {:>8.0e} {:>4} {:>10} {:>11}\n",
            r.kernel,
            r.dtype,
            format!("{:?}", r.shape),
            r.rel_l2,
            r.max_abs,
            r.tolerance,
            if r.ok { "yes" } else { "NO" },
            ms(r.fused_ms),
            ms(r.unfused_ms)
        );
    }
    s
}
