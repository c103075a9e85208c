//! Max-pool with kernel = stride over a channel-last map on CUDA (src/cuda/kernels/max_pool.cu):
//! Hiera's q-pool. The unfused path (`nn::pool::max_pool_nhwc` on other devices: pairwise maxima of
//! strided views) made candle copy each view before comparing it. Same maxima (candle's `maximum`
//! semantics), so the result is bit-exact.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/max_pool.fatbin"));

/// Whether [`max_pool_nhwc`] takes `x` [B, H, W, C]: CUDA, f32/f16/bf16, C a whole number of
/// 16-byte vectors, fewer than 2^32 elements.
pub fn supports(x: &Tensor) -> bool {
    let vec = 16 / x.dtype().size_in_bytes().max(1);
    x.device().is_cuda()
        && x.rank() == 4
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && x.dims()[3] > 0
        && x.dims()[3].is_multiple_of(vec)
        && x.elem_count() < u32::MAX as usize
}

/// x: [B, H, W, C] -> [B, H/sh, W/sw, C] (floor), the maximum of each window. The caller checks
/// that the output is not empty.
pub fn max_pool_nhwc(x: &Tensor, stride: (usize, usize)) -> Result<Tensor> {
    if !supports(x) || stride.0 == 0 || stride.1 == 0 {
        candle_core::bail!(
            "fused max-pool: unsupported x {:?} {:?} stride {stride:?}",
            x.dims(),
            x.dtype()
        )
    }
    super::strided_copy::contiguous(x)?.apply_op1_no_bwd(&MaxPool { stride })
}

struct MaxPool {
    stride: (usize, usize),
}

impl MaxPool {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        x: &CudaStorage,
        l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if !l.is_contiguous() || !(l.start_offset() * std::mem::size_of::<T>()).is_multiple_of(16) {
            candle_core::bail!("fused max-pool: x must be contiguous and 16-byte aligned")
        }
        let (b, h, w, c) = l.shape().dims4()?;
        let (sh, sw) = self.stride;
        let (ho, wo) = (h / sh, w / sw);
        let n = b * ho * wo * c;
        let vec = 16 / std::mem::size_of::<T>();
        let dev = x.device().clone();
        let suffix = super::kernels::type_suffix(x.dtype());
        let func = super::kernels::function(
            &dev,
            "max_pool",
            FATBIN,
            &format!("max_pool_nhwc_{suffix}"),
            0,
        )?;
        let xs = x.as_cuda_slice::<T>()?.slice(l.start_offset()..);
        let y = unsafe { dev.alloc::<T>(n) }?;
        let n_vec = (n / vec) as u32;
        let dims = [h as u32, w as u32, c as u32, sh as u32, sw as u32];
        let stream = dev.cuda_stream();
        let mut bld = stream.launch_builder(&func);
        bld.arg(&xs);
        bld.arg(&y);
        bld.arg(&n_vec);
        for d in &dims {
            bld.arg(d);
        }
        unsafe { bld.launch(super::kernels::grid_1d(n_vec)) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(y, dev),
            Shape::from((b, ho, wo, c)),
        ))
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "vosbench-max-pool"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the fused max-pool op runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, x: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        match x.dtype() {
            DType::F32 => self.launch::<f32>(x, l),
            DType::F16 => self.launch::<half::f16>(x, l),
            DType::BF16 => self.launch::<half::bf16>(x, l),
            d => candle_core::bail!("fused max-pool: unsupported dtype {d:?}"),
        }
    }
}
