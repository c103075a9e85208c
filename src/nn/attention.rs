//! Multi-head attention shared by the SAM heads, memory attention and the EdgeTAM perceiver.
//!
//! [`sdpa`] is `F.scaled_dot_product_attention` without mask or dropout (eval mode), with the
//! softmax always computed in f32 and an optional query chunking that bounds the size of the
//! score matrix. [`Attention`] is the `Attention` module of `sam2/modeling/sam/transformer.py`:
//! four biased projections around [`sdpa`], with an optional down-projected internal width and an
//! optional key/value input width. Its projections and head split/merge are public so that the
//! RoPE attention of memory attention can insert the rotary embedding between projection and
//! [`sdpa`] while reading the same weight keys.

use crate::nn::linear::Linear;
use crate::nn::{ContiguousExt, ModelOptions};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Scaled dot-product attention.
///
/// q: [B, H, Nq, D], k: [B, H, Nk, D], v: [B, H, Nk, Dv] -> [B, H, Nq, Dv]
///
/// With `fused`, on CUDA, where the fused kernel covers the inputs
/// (`crate::cuda::flash_attn::supports`), no score matrix is materialised and `chunk` does not
/// apply. Otherwise ([`sdpa_unfused`]):
///
/// Scale `1/sqrt(D)` (applied to the queries); the softmax runs in f32 and the probabilities are cast back to the input
/// dtype before the product with `v`. With `chunk = Some(n)` the queries are processed `n` rows
/// at a time, so the score matrix held at once is at most `B*H*n*Nk`. Every query row goes
/// through the same operations as in the unchunked path; the only difference is which GEMM kernel
/// the backend picks for the smaller row count, which can change the last bit of a sum (measured
/// on CPU: at most 9e-8 absolute on unit-scale inputs, and bitwise equal for many chunk sizes).
///
/// `fused` is the model's build-time choice (`crate::nn::ModelOptions::fused_attention`), held by
/// the attention layer that calls this.
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    chunk: Option<usize>,
    fused: bool,
) -> Result<Tensor> {
    if let (Ok((b, h, nq, d)), Ok((_, _, nk, _)), Ok(dv)) = (q.dims4(), k.dims4(), v.dim(3)) {
        // scores q k^T and the weighted sum p v
        let kind = crate::nn::flops::Kind::Attention;
        crate::nn::flops::add_matmul(kind, b * h, nq, d, nk);
        crate::nn::flops::add_matmul(kind, b * h, nq, nk, dv);
    }
    #[cfg(feature = "cuda")]
    if fused && crate::cuda::flash_attn::supports(q, k, v) {
        return crate::cuda::flash_attn::sdpa(q, k, v);
    }
    #[cfg(not(feature = "cuda"))]
    let _ = fused;
    sdpa_unfused(q, k, v, chunk)
}

/// [`sdpa`] as separate products and softmax on every device (the CPU path, and the reference
/// the fused CUDA kernel is checked against).
pub fn sdpa_unfused(q: &Tensor, k: &Tensor, v: &Tensor, chunk: Option<usize>) -> Result<Tensor> {
    let (_, _, nq, d) = q.dims4()?;
    let (_, _, nk, dk) = k.dims4()?;
    let (_, _, nv, _) = v.dims4()?;
    if dk != d {
        candle_core::bail!("sdpa: query head dim {d} differs from key head dim {dk}");
    }
    if nv != nk {
        candle_core::bail!("sdpa: {nk} keys but {nv} values");
    }
    let scale = 1.0 / (d as f64).sqrt();
    // Keys and values of several objects arrive interleaved (the memory bank is [L, B, C]), a
    // layout candle's CUDA matmul refuses; one object's are contiguous and are not copied.
    let kt = k.contiguous_fast()?.t()?;
    let v = &v.contiguous_fast()?;
    match chunk {
        Some(0) => candle_core::bail!("sdpa: query chunk size must be positive"),
        Some(n) if n < nq => {
            let mut outs = Vec::with_capacity(nq.div_ceil(n));
            let mut start = 0;
            while start < nq {
                let len = n.min(nq - start);
                let qc = q.narrow(2, start, len)?.contiguous_fast()?;
                outs.push(sdpa_block(&qc, &kt, v, scale)?);
                start += len;
            }
            Tensor::cat(&outs, 2)
        }
        _ => sdpa_block(q, &kt, v, scale),
    }
}

/// One block of query rows: q [B, H, n, D], kt [B, H, D, Nk], v [B, H, Nk, Dv] -> [B, H, n, Dv].
fn sdpa_block(q: &Tensor, kt: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let dtype = q.dtype();
    // Scaling the queries instead of the scores saves a pass over the [n, Nk] score matrix (the
    // largest tensor of memory attention); the products differ in the last bit at most.
    let scores = (q * scale)?.matmul(kt)?.to_dtype(DType::F32)?;
    softmax_f32(scores)?.to_dtype(dtype)?.matmul(v)
}

/// Softmax over the last axis of f32 scores, in place through vosbench's kernel on CUDA
/// (`crate::cuda::softmax`), candle's softmax elsewhere. `scores` is consumed.
fn softmax_f32(scores: Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::cuda::softmax::supports(&scores) {
        crate::cuda::softmax::softmax_last_dim_inplace(&scores)?;
        return Ok(scores);
    }
    candle_nn::ops::softmax_last_dim(&scores)
}

/// `Attention` of `sam/transformer.py`: projections to `internal_dim = embedding_dim /
/// downsample_rate`, `num_heads` heads, projection back to `embedding_dim`.
#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
    pub internal_dim: usize,
    /// Query chunk size passed to [`sdpa`] (None: all queries at once).
    pub chunk: Option<usize>,
    /// Whether [`sdpa`] may use the fused CUDA kernel ([`ModelOptions::fused_attention`]).
    pub fused: bool,
}

impl Attention {
    /// Weights under `q_proj`, `k_proj`, `v_proj`, `out_proj`. `kv_in_dim` is the input width
    /// of `k_proj`/`v_proj` when it differs from `embedding_dim`.
    pub fn new(
        embedding_dim: usize,
        num_heads: usize,
        downsample_rate: usize,
        kv_in_dim: Option<usize>,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        if downsample_rate == 0 || !embedding_dim.is_multiple_of(downsample_rate) {
            candle_core::bail!(
                "attention: embedding_dim {embedding_dim} is not divisible by downsample_rate {downsample_rate}"
            );
        }
        let internal_dim = embedding_dim / downsample_rate;
        if num_heads == 0 || !internal_dim.is_multiple_of(num_heads) {
            candle_core::bail!(
                "attention: internal_dim {internal_dim} is not divisible by num_heads {num_heads}"
            );
        }
        let kv_in = kv_in_dim.unwrap_or(embedding_dim);
        Ok(Self {
            q_proj: crate::nn::linear::linear(embedding_dim, internal_dim, vb.pp("q_proj"))?,
            k_proj: crate::nn::linear::linear(kv_in, internal_dim, vb.pp("k_proj"))?,
            v_proj: crate::nn::linear::linear(kv_in, internal_dim, vb.pp("v_proj"))?,
            out_proj: crate::nn::linear::linear(internal_dim, embedding_dim, vb.pp("out_proj"))?,
            num_heads,
            internal_dim,
            chunk: None,
            fused: opts.fused_attention,
        })
    }

    /// Bound the score matrix to `chunk` query rows at a time (see [`sdpa`]).
    pub fn with_chunk(mut self, chunk: Option<usize>) -> Self {
        self.chunk = chunk;
        self
    }

    /// x: [B, N, C] -> [B, heads, N, C/heads]
    pub fn separate_heads(&self, x: &Tensor) -> Result<Tensor> {
        separate_heads(x, self.num_heads)
    }

    /// x: [B, heads, N, c] -> [B, N, heads*c]
    pub fn recombine_heads(&self, x: &Tensor) -> Result<Tensor> {
        recombine_heads(x)
    }

    /// Project and split heads: q [B, Nq, C], k/v [B, Nk, Ckv] ->
    /// ([B, h, Nq, d], [B, h, Nk, d], [B, h, Nk, d]) with d = internal_dim / heads.
    pub fn project_qkv(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let q = self.separate_heads(&self.q_proj.forward(q)?)?;
        let k = self.separate_heads(&self.k_proj.forward(k)?)?;
        let v = self.separate_heads(&self.v_proj.forward(v)?)?;
        Ok((q, k, v))
    }

    /// Attention over already projected heads, then merge and `out_proj`:
    /// q [B, h, Nq, d], k/v [B, h, Nk, d] -> [B, Nq, embedding_dim]
    pub fn attend_projected(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let out = sdpa(q, k, v, self.chunk, self.fused)?;
        self.out_proj.forward(&self.recombine_heads(&out)?)
    }

    /// q: [B, Nq, C], k: [B, Nk, Ckv], v: [B, Nk, Ckv] -> [B, Nq, C]
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.project_qkv(q, k, v)?;
        self.attend_projected(&q, &k, &v)
    }
}

/// x: [B, N, C] -> [B, heads, N, C/heads] (contiguous)
pub fn separate_heads(x: &Tensor, num_heads: usize) -> Result<Tensor> {
    let (b, n, c) = x.dims3()?;
    if num_heads == 0 || !c.is_multiple_of(num_heads) {
        candle_core::bail!("separate_heads: {c} channels do not split into {num_heads} heads");
    }
    x.reshape((b, n, num_heads, c / num_heads))?
        .transpose(1, 2)?
        .contiguous_fast()
}

/// x: [B, heads, N, c] -> [B, N, heads*c]
pub fn recombine_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, n, c) = x.dims4()?;
    x.transpose(1, 2)?.contiguous_fast()?.reshape((b, n, h * c))
}

/// Naive reference used by the unit tests: per-row softmax computed with plain tensor ops.
#[cfg(test)]
fn sdpa_naive(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    use candle_core::D;
    let d = q.dim(D::Minus1)?;
    let s = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
    let m = s.max_keepdim(D::Minus1)?;
    let e = s.broadcast_sub(&m)?.exp()?;
    let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    p.matmul(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::max_abs_diff;
    use candle_core::Device;

    fn rand(shape: &[usize], seed: u64) -> Result<Tensor> {
        // Deterministic pseudo-random values without relying on a device RNG.
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(vals, shape, &Device::Cpu)
    }

    #[test]
    fn sdpa_matches_naive_softmax() -> Result<()> {
        let q = (rand(&[2, 3, 7, 8], 1)? * 3.0)?;
        let k = (rand(&[2, 3, 11, 8], 2)? * 3.0)?;
        let v = rand(&[2, 3, 11, 5], 3)?;
        let got = sdpa(&q, &k, &v, None, true)?;
        assert_eq!(got.dims(), &[2, 3, 7, 5]);
        let want = sdpa_naive(&q, &k, &v)?;
        assert!(max_abs_diff(&got, &want).unwrap() < 1e-5);
        Ok(())
    }

    #[test]
    fn chunked_sdpa_is_identical_to_unchunked() -> Result<()> {
        let q = rand(&[2, 4, 37, 16], 4)?;
        let k = rand(&[2, 4, 53, 16], 5)?;
        let v = rand(&[2, 4, 53, 16], 6)?;
        let full = sdpa(&q, &k, &v, None, true)?;
        for n in [1, 5, 8, 36, 37, 100] {
            let chunked = sdpa(&q, &k, &v, Some(n), true)?;
            assert_eq!(chunked.dims(), full.dims());
            let d = max_abs_diff(&full, &chunked).unwrap();
            assert!(
                d <= 1e-6,
                "chunk {n} differs from the unchunked result by {d}"
            );
        }
        assert!(sdpa(&q, &k, &v, Some(0), true).is_err());
        Ok(())
    }

    #[test]
    fn sdpa_rejects_mismatched_shapes() -> Result<()> {
        let q = rand(&[1, 1, 3, 4], 7)?;
        let k = rand(&[1, 1, 5, 6], 8)?;
        let v = rand(&[1, 1, 5, 4], 9)?;
        assert!(sdpa(&q, &k, &v, None, true).is_err());
        Ok(())
    }

    #[test]
    fn attention_forward_matches_manual_composition() -> Result<()> {
        use std::collections::HashMap;
        let dev = Device::Cpu;
        let (c, kv, heads, rate) = (16usize, 12usize, 2usize, 2usize);
        let internal = c / rate;
        let mut ws = HashMap::new();
        let mut seed = 10;
        for (name, n_in, n_out) in [
            ("q_proj", c, internal),
            ("k_proj", kv, internal),
            ("v_proj", kv, internal),
            ("out_proj", internal, c),
        ] {
            ws.insert(format!("{name}.weight"), rand(&[n_out, n_in], seed)?);
            ws.insert(format!("{name}.bias"), rand(&[n_out], seed + 1)?);
            seed += 2;
        }
        let vb = VarBuilder::from_tensors(ws.clone(), DType::F32, &dev);
        let attn = Attention::new(c, heads, rate, Some(kv), &ModelOptions::default(), vb)?;
        assert_eq!(attn.internal_dim, internal);
        let q = rand(&[2, 5, c], 30)?;
        let k = rand(&[2, 9, kv], 31)?;
        let v = rand(&[2, 9, kv], 32)?;
        let got = attn.forward(&q, &k, &v)?;
        assert_eq!(got.dims(), &[2, 5, c]);

        let lin = |x: &Tensor, name: &str| -> Result<Tensor> {
            let w = &ws[&format!("{name}.weight")];
            let b = &ws[&format!("{name}.bias")];
            x.broadcast_matmul(&w.t()?)?.broadcast_add(b)
        };
        let split = |x: Tensor| -> Result<Tensor> {
            let (b, n, ch) = x.dims3()?;
            x.reshape((b, n, heads, ch / heads))?.permute((0, 2, 1, 3))
        };
        let qh = split(lin(&q, "q_proj")?)?.contiguous_fast()?;
        let kh = split(lin(&k, "k_proj")?)?.contiguous_fast()?;
        let vh = split(lin(&v, "v_proj")?)?.contiguous_fast()?;
        let o = sdpa_naive(&qh, &kh, &vh)?
            .permute((0, 2, 1, 3))?
            .reshape((2, 5, internal))?;
        let want = lin(&o, "out_proj")?;
        assert!(max_abs_diff(&got, &want).unwrap() < 1e-5);

        let chunked = attn.clone().with_chunk(Some(2)).forward(&q, &k, &v)?;
        assert!(max_abs_diff(&chunked, &got).unwrap() <= 1e-6);
        Ok(())
    }

    #[test]
    fn bad_head_split_is_an_error() {
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let opts = ModelOptions::default();
        assert!(Attention::new(16, 3, 1, None, &opts, vb.clone()).is_err());
        assert!(Attention::new(16, 2, 3, None, &opts, vb).is_err());
    }
}
