//! In-place row softmax of contiguous f32 CUDA tensors (src/cuda/kernels/softmax.cu), used by the
//! unfused attention path for its f32 score chunks. candle's softmax gives each row one warp and
//! reads it three times; this kernel gives each row a 256-thread block and reads it twice.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CpuStorage, CudaStorage, DType, InplaceOp1, Layout, Result, Tensor};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/softmax.fatbin"));

/// Whether [`softmax_last_dim_inplace`] takes `x`: a contiguous f32 CUDA tensor with a non-empty
/// last axis, fewer than 2^31 rows and 2^32 columns.
pub fn supports(x: &Tensor) -> bool {
    let cols = x.dims().last().copied().unwrap_or(0);
    x.device().is_cuda()
        && x.dtype() == DType::F32
        && x.is_contiguous()
        && cols > 0
        && cols < u32::MAX as usize
        && x.elem_count() / cols < i32::MAX as usize
}

/// Softmax over the last axis of `x`, written into `x` (a fresh tensor: its storage changes).
pub fn softmax_last_dim_inplace(x: &Tensor) -> Result<()> {
    if !supports(x) {
        candle_core::bail!("softmax: unsupported {:?} {:?}", x.dtype(), x.dims())
    }
    x.inplace_op1(&SoftmaxRows)
}

struct SoftmaxRows;

impl InplaceOp1 for SoftmaxRows {
    fn name(&self) -> &'static str {
        "vosbench-softmax-rows"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> Result<()> {
        candle_core::bail!("the row-softmax op runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, x: &mut CudaStorage, l: &Layout) -> Result<()> {
        let dev = x.device().clone();
        let n = l.shape().elem_count();
        let cols = *l.dims().last().unwrap_or(&1);
        let rows = n / cols.max(1);
        if rows == 0 {
            return Ok(());
        }
        let func = super::kernels::function(&dev, "softmax", FATBIN, "softmax_rows_f32", 0)?;
        let mut xs = x
            .as_cuda_slice_mut::<f32>()?
            .slice_mut(l.start_offset()..l.start_offset() + n);
        let cols_u = cols as u32;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&func);
        b.arg(&mut xs);
        b.arg(&cols_u);
        unsafe { b.launch(cfg) }.w()?;
        Ok(())
    }
}
