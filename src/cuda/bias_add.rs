//! `x[.., c] += b[c]` in place on a contiguous CUDA tensor (src/cuda/kernels/bias_add.cu), the
//! bias of every Linear. candle's broadcast add takes its strided path for this pattern, which
//! ran at about a tenth of the memory bandwidth on an H200 and was the single largest kernel of
//! a SAM 2.1 frame (ncu, docs/performance.md).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CpuStorage, CudaStorage, DType, InplaceOp2, Layout, Result, Tensor};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bias_add.fatbin"));

/// Whether [`add_bias_inplace`] takes `x` and `b`: CUDA, same float dtype, both contiguous, `b`
/// one value per last-axis column, fewer than 2^32 elements.
pub fn supports(x: &Tensor, b: &Tensor) -> bool {
    x.device().is_cuda()
        && b.device().same_device(x.device())
        && x.dtype() == b.dtype()
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && x.is_contiguous()
        && b.is_contiguous()
        && b.rank() == 1
        && x.dims().last() == Some(&b.elem_count())
        && b.elem_count() > 0
        && x.elem_count() < u32::MAX as usize
}

/// What the kernel applies after the bias: nothing, or the Linear's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    None,
    /// `max(x, 0)`, as candle's `relu`
    Relu,
    /// `x * normcdf(x)`, as candle's `gelu_erf`
    GeluErf,
}

/// Whether [`add_bias_act_inplace`] takes `x` and `b`: [`supports`], with rows of whole 16-byte
/// vectors and both tensors starting 16-byte aligned (the activations have a vector kernel only).
pub fn supports_epilogue(x: &Tensor, b: &Tensor) -> bool {
    let size = x.dtype().size_in_bytes();
    let vec = 16 / size.max(1);
    let aligned = |t: &Tensor| (t.layout().start_offset() * size).is_multiple_of(16);
    supports(x, b) && b.elem_count().is_multiple_of(vec) && aligned(x) && aligned(b)
}

/// Add `b` to every row of `x`, in place. `x` must be the only handle on its storage (a fresh
/// matmul output), as candle's in-place ops require.
pub fn add_bias_inplace(x: &Tensor, b: &Tensor) -> Result<()> {
    if !supports(x, b) {
        candle_core::bail!("bias add: unsupported {:?} + {:?}", x.dims(), b.dims())
    }
    x.inplace_op2(
        b,
        &BiasAdd {
            epilogue: Epilogue::None,
        },
    )
}

/// `x = act(x + b)` in place, one pass ([`supports_epilogue`] inputs only).
pub fn add_bias_act_inplace(x: &Tensor, b: &Tensor, epilogue: Epilogue) -> Result<()> {
    if !supports_epilogue(x, b) {
        candle_core::bail!(
            "bias add with {epilogue:?}: unsupported {:?} + {:?}",
            x.dims(),
            b.dims()
        )
    }
    x.inplace_op2(b, &BiasAdd { epilogue })
}

struct BiasAdd {
    epilogue: Epilogue,
}

impl BiasAdd {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        x: &mut CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<()> {
        let dev = x.device().clone();
        let n = xl.shape().elem_count();
        let cols = bl.shape().elem_count();
        let suffix = super::kernels::type_suffix(x.dtype());
        // 16-byte vectors when rows are whole vectors and both starts are 16-byte aligned (the
        // allocations themselves are).
        let vec = 16 / std::mem::size_of::<T>();
        let aligned = |l: &Layout| (l.start_offset() * std::mem::size_of::<T>()).is_multiple_of(16);
        let vectorised = cols.is_multiple_of(vec) && aligned(xl) && aligned(bl);
        let (name, n_arg, cols_arg) = match (vectorised, self.epilogue) {
            (true, Epilogue::None) => (format!("bias_add_vec_{suffix}"), n / vec, cols / vec),
            (true, Epilogue::Relu) => (format!("bias_relu_vec_{suffix}"), n / vec, cols / vec),
            (true, Epilogue::GeluErf) => (format!("bias_gelu_vec_{suffix}"), n / vec, cols / vec),
            (false, Epilogue::None) => (format!("bias_add_{suffix}"), n, cols),
            (false, e) => candle_core::bail!("bias add with {e:?} needs whole aligned vectors"),
        };
        let func = super::kernels::function(&dev, "bias_add", FATBIN, &name, 0)?;
        let bs = b.as_cuda_slice::<T>()?.slice(bl.start_offset()..);
        let mut xs = x
            .as_cuda_slice_mut::<T>()?
            .slice_mut(xl.start_offset()..xl.start_offset() + n);
        let (n_u, cols_u) = (n_arg as u32, cols_arg as u32);
        let cfg = super::kernels::grid_1d(n_u);
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&mut xs);
        builder.arg(&bs);
        builder.arg(&n_u);
        builder.arg(&cols_u);
        unsafe { builder.launch(cfg) }.w()?;
        Ok(())
    }
}

impl InplaceOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "vosbench-bias-add"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
        candle_core::bail!("the bias-add op runs on CUDA tensors only")
    }

    fn cuda_fwd(
        &self,
        x: &mut CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<()> {
        match x.dtype() {
            DType::F32 => self.launch::<f32>(x, xl, b, bl),
            DType::F16 => self.launch::<half::f16>(x, xl, b, bl),
            DType::BF16 => self.launch::<half::bf16>(x, xl, b, bl),
            d => candle_core::bail!("bias add: unsupported dtype {d:?}"),
        }
    }
}
