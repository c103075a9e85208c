//! SAM's `LayerNorm2d` (channel-first LayerNorm) as one CUDA kernel
//! (src/cuda/kernels/layer_norm2d.cu), optionally with the erf-GELU that follows it in the mask
//! downsampler and the mask decoder's upscaling. The unfused path (`nn::norm::LayerNorm2d` on other
//! devices) casts to f32 and runs ten candle kernels; in the ncu profile of a SAM 2.1 tiny bf16
//! frame its seven calls took about a millisecond. Same arithmetic in f32; the sums run in a
//! different order, so results can differ from the unfused path in the last f32 bits (and, after
//! rounding, by one unit of f16/bf16).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CpuStorage, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/layer_norm2d.fatbin"));
const PX: u32 = 32;
const LANES: u32 = 8;

/// Whether [`layer_norm2d`] takes `x` [B, C, H, W] with `weight`/`bias` [C]: CUDA, f32/f16/bf16,
/// the same dtype and device for all three, fewer than 2^32 elements.
pub fn supports(x: &Tensor, weight: &Tensor, bias: &Tensor) -> bool {
    x.device().is_cuda()
        && x.rank() == 4
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && [weight, bias].iter().all(|t| {
            t.dtype() == x.dtype()
                && t.device().same_device(x.device())
                && t.rank() == 1
                && t.dim(0).ok() == x.dim(1).ok()
        })
        && x.elem_count() < u32::MAX as usize
}

/// x: [B, C, H, W] -> [B, C, H, W], normalised over C (biased variance, `eps`), then scaled and
/// shifted per channel; with `gelu`, erf-GELU on the result.
pub fn layer_norm2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    gelu: bool,
) -> Result<Tensor> {
    if !supports(x, weight, bias) {
        candle_core::bail!(
            "fused LayerNorm2d: unsupported x {:?} {:?}, weight {:?}",
            x.dims(),
            x.dtype(),
            weight.dims()
        )
    }
    let op = LayerNorm2d {
        eps: eps as f32,
        gelu,
    };
    super::strided_copy::contiguous(x)?.apply_op3_no_bwd(
        &weight.contiguous()?,
        &bias.contiguous()?,
        &op,
    )
}

struct LayerNorm2d {
    eps: f32,
    gelu: bool,
}

impl LayerNorm2d {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, h, wd) = xl.shape().dims4()?;
        let hw = h * wd;
        let dev = x.device().clone();
        let suffix = super::kernels::type_suffix(x.dtype());
        let name = if self.gelu {
            format!("layer_norm2d_gelu_{suffix}")
        } else {
            format!("layer_norm2d_{suffix}")
        };
        let func = super::kernels::function(&dev, "layer_norm2d", FATBIN, &name, 0)?;
        let xs = x.as_cuda_slice::<T>()?.slice(xl.start_offset()..);
        let ws = w.as_cuda_slice::<T>()?.slice(wl.start_offset()..);
        let bs = b.as_cuda_slice::<T>()?.slice(bl.start_offset()..);
        let y = unsafe { dev.alloc::<T>(n * c * hw) }?;
        let (c_u, hw_u) = (c as u32, hw as u32);
        let cfg = LaunchConfig {
            grid_dim: ((hw as u32).div_ceil(PX), n as u32, 1),
            block_dim: (PX, LANES, 1),
            shared_mem_bytes: 0,
        };
        let stream = dev.cuda_stream();
        let mut bld = stream.launch_builder(&func);
        bld.arg(&xs);
        bld.arg(&ws);
        bld.arg(&bs);
        bld.arg(&y);
        bld.arg(&c_u);
        bld.arg(&hw_u);
        bld.arg(&self.eps);
        unsafe { bld.launch(cfg) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(y, dev), xl.shape().clone()))
    }
}

impl CustomOp3 for LayerNorm2d {
    fn name(&self) -> &'static str {
        "vosbench-layer-norm2d"
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
        candle_core::bail!("the fused LayerNorm2d op runs on CUDA tensors only")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        for (name, l) in [("x", xl), ("weight", wl), ("bias", bl)] {
            if !l.is_contiguous() {
                candle_core::bail!("fused LayerNorm2d: {name} must be contiguous")
            }
        }
        match x.dtype() {
            DType::F32 => self.launch::<f32>(x, xl, w, wl, b, bl),
            DType::F16 => self.launch::<half::f16>(x, xl, w, wl, b, bl),
            DType::BF16 => self.launch::<half::bf16>(x, xl, w, wl, b, bl),
            d => candle_core::bail!("fused LayerNorm2d: unsupported dtype {d:?}"),
        }
    }
}
