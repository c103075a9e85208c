//! Fused scaled-dot-product attention on CUDA: the kernels of `src/cuda/kernels/flash_attn.cu`
//! behind a candle custom op.
//!
//! Memory attention of SAM 2.1 attends 4096 queries to about 28,700 memory tokens; the unfused
//! path (`nn::attention::sdpa_unfused`, and on other devices) writes the score matrix in query
//! chunks and runs a softmax over it. This op never materialises scores: one block walks all keys for
//! 64 queries with a running maximum and sum, the products on tensor cores, and when the query
//! blocks alone leave the GPU part-empty it splits the keys over more blocks, as many as fill
//! one wave ([`key_splits`]), and merges their partial results.
//!
//! Precision per input type:
//! - bf16 / f16: products in the input type with f32 accumulation; probabilities rounded to the
//!   input type before the product with `v`, as the unfused path does;
//! - f32 with TF32 allowed (`--tf32`, i.e. candle's reduced-precision f32 GEMMs): TF32 products;
//! - f32 otherwise: each product as three TF32 products of a big/small split of both operands
//!   (f32-level products; the tensor cores' f32 accumulation is not IEEE-rounded, so each key
//!   tile's P.V is summed there and added to the output with ordinary f32 arithmetic).
//!
//! Head dims 56 (Hiera-B+), 72 (Hiera-L), 96 (Hiera-T/S), 256 (memory attention), 64 and 128 have
//! kernels (56 and 72 padded with zero columns to 64 and 80); everything else, and devices below compute
//! capability 8.0 (no `mma.sync` for these types), stays on the unfused path. So does f32 (with or
//! without TF32) at head dim 256, memory attention: there cuBLAS's GEMMs around vosbench's row
//! softmax (`crate::cuda::softmax`) measured about twice as fast as this kernel's f32 variants on
//! an H200 (docs/performance.md), whose f32 tiles are limited by shared-memory traffic; the
//! unfused path's score chunk (1024 query rows) bounds its memory.
//!
//! Its check against the unfused path is `vosbench probe --check-attention`
//! (`cli::probe::attention`).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    sys, CudaFunction, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CpuStorage, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// SASS for the build's compute capability plus PTX (build.rs).
static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flash_attn.fatbin"));

fn function(dev: &candle_core::CudaDevice, name: &str, smem: usize) -> Result<CudaFunction> {
    super::kernels::function(dev, "flash_attn", FATBIN, name, smem)
}

/// Head dims with a compiled kernel.
pub const HEAD_DIMS: [usize; 6] = [56, 64, 72, 96, 128, 256];

/// The head dim a kernel works in: `d` rounded up to a multiple of 16 (zero columns).
fn padded(d: usize) -> usize {
    d.div_ceil(16) * 16
}
const BM: usize = 64;
const THREADS: u32 = 128;

/// How f32 inputs are multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Math {
    /// three TF32 products per step (f32 accuracy)
    Exact,
    /// one TF32 product per step (what `--tf32` asks for)
    Tf32,
}

impl F32Math {
    /// Follows candle's switch for reduced-precision f32 GEMMs, which `--tf32` sets.
    pub fn current() -> Self {
        if candle_core::cuda_backend::gemm_reduced_precision_f32() {
            F32Math::Tf32
        } else {
            F32Math::Exact
        }
    }
}

/// Whether `nn::attention::sdpa` sends these inputs to the fused kernel: [`covers`],
/// except f32 at head dims above 128, where the unfused path (cuBLAS and the row-softmax kernel,
/// in 1024-row chunks) measured faster (docs/performance.md).
pub fn supports(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let d = q.dims().last().copied().unwrap_or(0);
    covers(q, k, v) && !(q.dtype() == DType::F32 && d > 128)
}

/// Whether the kernel can run these inputs at all: CUDA tensors of compute capability 8.0 or
/// later, f32/f16/bf16, a head dim in [`HEAD_DIMS`], equal head dims for q, k and v.
pub fn covers(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let candle_core::Device::Cuda(dev) = q.device() else {
        return false;
    };
    let ok_dtype = matches!(q.dtype(), DType::F32 | DType::F16 | DType::BF16);
    let d = q.dims().last().copied().unwrap_or(0);
    ok_dtype
        && k.dtype() == q.dtype()
        && v.dtype() == q.dtype()
        && HEAD_DIMS.contains(&d)
        && k.dims().last() == Some(&d)
        && v.dims().last() == Some(&d)
        && compute_capability(dev).is_some_and(|cc| cc >= 80)
}

fn compute_capability(dev: &candle_core::CudaDevice) -> Option<i32> {
    let ctx = dev.cuda_stream().context().clone();
    let major = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .ok()?;
    let minor = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .ok()?;
    Some(major * 10 + minor)
}

/// q: [B, H, Nq, D], k: [B, H, Nk, D], v: [B, H, Nk, D] -> [B, H, Nq, D], scale `1/sqrt(D)`.
pub fn sdpa(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, h, nq, d) = q.dims4()?;
    let (bk, hk, nk, dk) = k.dims4()?;
    if (bk, hk, dk) != (b, h, d) || v.dims4()? != (b, h, nk, d) {
        candle_core::bail!(
            "flash attention: q {:?}, k {:?}, v {:?} do not fit together",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let op = FlashAttn {
        scale: 1.0 / (d as f32).sqrt(),
        f32_math: F32Math::current(),
    };
    let flat = |t: &Tensor, n: usize| t.contiguous()?.reshape((b * h, n, d));
    let out = flat(q, nq)?.apply_op3_no_bwd(&flat(k, nk)?, &flat(v, nk)?, &op)?;
    out.reshape((b, h, nq, d))
}

struct FlashAttn {
    scale: f32,
    f32_math: F32Math,
}

/// Per element type: kernel name prefix, key tile, shared-memory paddings (as in the .cu file).
struct Geometry {
    prefix: &'static str,
    combine: &'static str,
    bn: usize,
    pad_qk: usize,
    pad_v: usize,
    /// padding of the shared probability tile; `None` where the probabilities stay in
    /// registers (`flash_body16`)
    pad_p: Option<usize>,
    elem: usize,
}

impl Geometry {
    /// Dynamic shared memory of one block at padded head dim `dp`: the query tile, one key and
    /// one value tile, and (f32 kernels) each warp's 16-row probability tile.
    fn shared_bytes(&self, dp: usize) -> usize {
        let p_tile = self.pad_p.map_or(0, |pad| 4 * 16 * (self.bn + pad));
        self.elem
            * (BM * (dp + self.pad_qk)
                + self.bn * (dp + self.pad_qk)
                + self.bn * (dp + self.pad_v)
                + p_tile)
    }
}

/// How many parts the keys are split into so that all blocks of the launch fill the GPU in
/// one wave: `capacity` blocks run at once (multiprocessors x resident blocks each). With
/// `tiles` query tiles (all heads) already filling a wave, no split; otherwise as many splits as
/// fit in the wave beside the others, each keeping at least four key tiles of `bn` keys. A
/// partial second wave would cost a whole wave's time for a fraction of the work.
pub fn key_splits(tiles: usize, nk: usize, bn: usize, capacity: usize) -> usize {
    let fit = (capacity / tiles.max(1)).max(1);
    let max_splits = nk.div_ceil(4 * bn).max(1);
    fit.min(max_splits)
}

impl FlashAttn {
    fn geometry(&self, dtype: DType) -> Result<Geometry> {
        let half = |prefix, combine| Geometry {
            prefix,
            combine,
            bn: 64,
            pad_qk: 8,
            pad_v: 8,
            pad_p: None,
            elem: 2,
        };
        let single = |prefix| Geometry {
            prefix,
            combine: "flash_combine_f32",
            bn: 32,
            pad_qk: 4,
            pad_v: 8,
            pad_p: Some(4),
            elem: 4,
        };
        Ok(match dtype {
            DType::BF16 => half("flash_attn_bf16", "flash_combine_bf16"),
            DType::F16 => half("flash_attn_f16", "flash_combine_f16"),
            DType::F32 => match self.f32_math {
                F32Math::Exact => single("flash_attn_f32"),
                F32Math::Tf32 => single("flash_attn_tf32"),
            },
            d => candle_core::bail!("flash attention: unsupported dtype {d:?}"),
        })
    }

    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        q: &CudaStorage,
        ql: &Layout,
        k: &CudaStorage,
        kl: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (bh, nq, d) = ql.shape().dims3()?;
        let (_, nk, _) = kl.shape().dims3()?;
        for (name, l) in [("q", ql), ("k", kl), ("v", vl)] {
            if !l.is_contiguous()
                || !(l.start_offset() * std::mem::size_of::<T>()).is_multiple_of(16)
            {
                candle_core::bail!("flash attention: {name} must be contiguous and 16-byte aligned")
            }
        }
        if nq == 0 || nk == 0 {
            candle_core::bail!("flash attention: {nq} queries, {nk} keys");
        }
        let geo = self.geometry(q.dtype())?;
        let dev = q.device().clone();
        let qs = q.as_cuda_slice::<T>()?.slice(ql.start_offset()..);
        let ks = k.as_cuda_slice::<T>()?.slice(kl.start_offset()..);
        let vs = v.as_cuda_slice::<T>()?.slice(vl.start_offset()..);

        let dp = padded(d);
        let smem = geo.shared_bytes(dp);
        let func = function(&dev, &format!("{}_d{d}", geo.prefix), smem)?;
        let stream = dev.cuda_stream();

        let sms = dev
            .cuda_stream()
            .context()
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .w()? as usize;
        let per_sm = func
            .occupancy_max_active_blocks_per_multiprocessor(THREADS, smem, None)
            .w()? as usize;
        let splits = key_splits(nq.div_ceil(BM) * bh, nk, geo.bn, sms * per_sm.max(1));
        let q_tiles = nq.div_ceil(BM);
        let keys_per_split = nk.div_ceil(splits).div_ceil(geo.bn) * geo.bn;
        let splits = nk.div_ceil(keys_per_split);

        let out = unsafe { dev.alloc::<T>(bh * nq * d) }?;
        let rows = bh * nq;
        let (opart, ml) = if splits > 1 {
            (unsafe { dev.alloc::<f32>(splits * rows * d) }?, unsafe {
                dev.alloc::<f32>(splits * rows * 2)
            }?)
        } else {
            (unsafe { dev.alloc::<f32>(1) }?, unsafe {
                dev.alloc::<f32>(1)
            }?)
        };
        let (nq_i, nk_i, kps_i) = (nq as i32, nk as i32, keys_per_split as i32);
        let scale_log2 = self.scale * std::f32::consts::LOG2_E;
        let cfg = LaunchConfig {
            grid_dim: (q_tiles as u32, bh as u32, splits as u32),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: smem as u32,
        };
        let mut b = stream.launch_builder(&func);
        b.arg(&qs);
        b.arg(&ks);
        b.arg(&vs);
        b.arg(&out);
        b.arg(&opart);
        b.arg(&ml);
        b.arg(&nq_i);
        b.arg(&nk_i);
        b.arg(&kps_i);
        b.arg(&scale_log2);
        unsafe { b.launch(cfg) }.w()?;

        if splits > 1 {
            let comb = function(&dev, geo.combine, 0)?;
            let (splits_i, rows_i, d_i) = (splits as i32, rows as i32, d as i32);
            let cfg = LaunchConfig {
                grid_dim: (rows as u32, 1, 1),
                block_dim: (64, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = stream.launch_builder(&comb);
            b.arg(&opart);
            b.arg(&ml);
            b.arg(&out);
            b.arg(&splits_i);
            b.arg(&rows_i);
            b.arg(&d_i);
            unsafe { b.launch(cfg) }.w()?;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((bh, nq, d)),
        ))
    }
}

impl CustomOp3 for FlashAttn {
    fn name(&self) -> &'static str {
        "vosbench-flash-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the fused attention op runs on CUDA tensors only")
    }

    fn cuda_fwd(
        &self,
        q: &CudaStorage,
        ql: &Layout,
        k: &CudaStorage,
        kl: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        match q.dtype() {
            DType::F32 => self.launch::<f32>(q, ql, k, kl, v, vl),
            DType::F16 => self.launch::<half::f16>(q, ql, k, kl, v, vl),
            DType::BF16 => self.launch::<half::bf16>(q, ql, k, kl, v, vl),
            d => candle_core::bail!("flash attention: unsupported dtype {d:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_splits;

    #[test]
    fn key_splits_fill_one_wave() {
        // SAM 2.1 memory attention on an H200 at head dim 256: 64 query tiles, 132 SMs x 2 blocks
        assert_eq!(key_splits(64, 28736, 64, 264), 4);
        // query tiles alone fill a wave (windowed attention): no split
        assert_eq!(key_splits(600, 4096, 64, 264), 1);
        assert_eq!(key_splits(264, 4096, 64, 264), 1);
        // few keys: at least four key tiles per split
        assert_eq!(key_splits(1, 300, 64, 264), 2);
        assert_eq!(key_splits(1, 1, 64, 264), 1);
        // degenerate inputs do not divide by zero
        assert_eq!(key_splits(0, 100, 64, 0), 1);
    }
}
