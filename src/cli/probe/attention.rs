//! `vosbench probe --check-attention`: the fused CUDA attention kernel (`cuda::flash_attn`)
//! against the unfused path (`nn::attention::sdpa_unfused`, pure f32) on the same device and
//! inputs, in f32, f32 with TF32, f16 and bf16, at the models' shapes and odd sizes, optionally
//! timing both. `tests/attention_cuda.rs` runs the same check untimed.

use crate::cuda::flash_attn::{covers, sdpa, supports};
use crate::nn::attention::sdpa_unfused;
use candle_core::{DType, Result, Tensor};

/// One case of [`check`]: the fused kernel against the unfused f32 path (pure f32 GEMMs) on the
/// same device and inputs, and optionally both timed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    /// f32, f32+tf32, f16 or bf16
    pub math: String,
    /// [B*H, Nq, Nk, D]
    pub shape: [usize; 4],
    pub rel_l2: f64,
    pub max_abs: f64,
    pub tolerance: f64,
    pub ok: bool,
    /// mean ms per call over 5 calls after one warm-up (timed cases only)
    pub fused_ms: Option<f64>,
    /// the unfused path at the same precision, query chunks of 1024 as memory attention runs it
    pub unfused_ms: Option<f64>,
    /// whether `nn::attention::sdpa` takes the fused kernel for these inputs ([`supports`])
    pub used: bool,
}

/// The shapes [`check`] runs: the real ones at a 1024 input (timed) and odd sizes that leave
/// partial query and key tiles, a single key, and key splits.
pub const CHECK_SHAPES: [([usize; 4], bool); 9] = [
    ([1, 4096, 28736, 256], true), // SAM 2.1 memory attention, cross-attention, full bank
    ([1, 4096, 4096, 256], true),  // its self-attention
    ([4, 4096, 4096, 96], true),   // Hiera-T global attention (stage 3, 64x64 tokens)
    ([8, 4096, 4096, 56], true),   // Hiera-B+ global attention (stage 3)
    ([2, 100, 77, 96], false),
    ([3, 65, 1, 72], false),
    ([1, 1, 300, 64], false),
    ([2, 130, 1000, 128], false),
    ([1, 200, 2049, 256], false),
];

/// Run every [`CHECK_SHAPES`] case in f32, f32+TF32, f16 and bf16 on `dev` (a CUDA device).
/// Candle's TF32 switch is restored afterwards.
pub fn check(dev: &candle_core::Device, timed: bool) -> Result<Vec<CheckRow>> {
    let saved = candle_core::cuda_backend::gemm_reduced_precision_f32();
    let res = check_all(dev, timed);
    candle_core::cuda_backend::set_gemm_reduced_precision_f32(saved);
    res
}

fn check_all(dev: &candle_core::Device, timed: bool) -> Result<Vec<CheckRow>> {
    let set_tf32 = candle_core::cuda_backend::set_gemm_reduced_precision_f32;
    let mut rows = Vec::new();
    for (si, &([bh, nq, nk, d], time_it)) in CHECK_SHAPES.iter().enumerate() {
        let seed = si as u64 + 1;
        dev.set_seed(seed)?;
        let q = (Tensor::randn(0f32, 1f32, (1, bh, nq, d), dev)? * 1.5)?;
        let k = Tensor::randn(0f32, 1f32, (1, bh, nk, d), dev)?;
        let v = Tensor::randn(0f32, 1f32, (1, bh, nk, d), dev)?;
        for (math, dtype, tf32, tol) in [
            ("f32", DType::F32, false, 1e-4),
            ("f32+tf32", DType::F32, true, 3e-3),
            ("f16", DType::F16, false, 3e-3),
            ("bf16", DType::BF16, false, 2e-2),
        ] {
            let (qd, kd, vd) = (q.to_dtype(dtype)?, k.to_dtype(dtype)?, v.to_dtype(dtype)?);
            if !covers(&qd, &kd, &vd) {
                candle_core::bail!("the fused kernel does not cover {math} {:?}", qd.dims());
            }
            let used = supports(&qd, &kd, &vd);
            set_tf32(tf32);
            let got = sdpa(&qd, &kd, &vd)?.to_dtype(DType::F32)?;
            set_tf32(false);
            // reference: the same (rounded) inputs, unfused, pure f32
            let want = sdpa_unfused(
                &qd.to_dtype(DType::F32)?,
                &kd.to_dtype(DType::F32)?,
                &vd.to_dtype(DType::F32)?,
                Some(1024),
            )?;
            let diff = crate::compare::diff(&got, &want)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let (rel_l2, max_abs) = (diff.rel_l2(), diff.max_abs);
            let (mut fused_ms, mut unfused_ms) = (None, None);
            if timed && time_it {
                set_tf32(tf32);
                fused_ms = Some(time_ms(dev, || sdpa(&qd, &kd, &vd).map(|_| ()))?);
                unfused_ms = Some(time_ms(dev, || {
                    sdpa_unfused(&qd, &kd, &vd, Some(1024)).map(|_| ())
                })?);
                set_tf32(false);
            }
            rows.push(CheckRow {
                math: math.into(),
                shape: [bh, nq, nk, d],
                rel_l2,
                max_abs,
                tolerance: tol,
                ok: rel_l2.is_finite() && rel_l2 <= tol,
                fused_ms,
                unfused_ms,
                used,
            });
        }
    }
    Ok(rows)
}

/// Mean ms of one call of `f` over 5 calls after one warm-up, the device synchronised around them.
pub(super) fn time_ms(dev: &candle_core::Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let t = std::time::Instant::now();
    const N: usize = 5;
    for _ in 0..N {
        f()?;
    }
    dev.synchronize()?;
    Ok(t.elapsed().as_secs_f64() * 1e3 / N as f64)
}

/// The check as a table.
pub fn render_check(rows: &[CheckRow]) -> String {
    let mut s = format!(
        "{:<9} {:>26} {:>10} {:>10} {:>8} {:>4} {:>10} {:>11} {:>8}\n",
        "math",
        "[B*H, Nq, Nk, D]",
        "rel L2",
        "max abs",
        "tol",
        "ok",
        "fused ms",
        "unfused ms",
        "used"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in rows {
        s += &format!(
            "{:<9} {:>26} {:>10.2e} {:>10.2e} {:>8.0e} {:>4} {:>10} {:>11} {:>8}\n",
            r.math,
            format!("{:?}", r.shape),
            r.rel_l2,
            r.max_abs,
            r.tolerance,
            if r.ok { "yes" } else { "NO" },
            ms(r.fused_ms),
            ms(r.unfused_ms),
            if r.used { "fused" } else { "unfused" }
        );
    }
    s
}
