//! Axial RoPE in one pass on CUDA (src/cuda/kernels/rope.cu): the rotation of memory
//! attention's queries and keys, with the keys' repeated tables and unrotated trailing tokens
//! (object pointers) handled in the same kernel. The unfused path (`nn::rope::rotate` and
//! friends: a copy of the rotated tokens, a cast to f32, candle's `rope_i`, a cast back and a
//! concatenation) made five passes over the 28,736 keys of a full SAM 2.1 bank per layer; this
//! makes one. Same arithmetic: f32 products of the f32 input value and table, rounded once to
//! the input type.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CpuStorage, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rope.fatbin"));

/// Whether [`rotate`] takes `x` [B, H, N, D] with tables `cos`/`sin` [period, D/2]: CUDA, f32,
/// f16 or bf16, D a multiple of the kernel's 16-byte vector, f32 tables on the same device,
/// fewer than 2^32 elements.
pub fn supports(x: &Tensor, cos: &Tensor) -> bool {
    let d = x.dims().last().copied().unwrap_or(0);
    let vec = 16 / x.dtype().size_in_bytes().max(1);
    x.device().is_cuda()
        && cos.device().same_device(x.device())
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && cos.dtype() == DType::F32
        && x.rank() == 4
        && d > 0
        && d.is_multiple_of(vec)
        && cos.dims().get(1).is_some_and(|&h| h * 2 == d)
        && x.elem_count() < u32::MAX as usize
}

/// x: [B, H, N, D] -> [B, H, N, D]: tokens `n < n_rope` rotated with table row `n % period`
/// (the table has `period` rows), the rest copied.
pub fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor, n_rope: usize) -> Result<Tensor> {
    if !supports(x, cos) || cos.dims() != sin.dims() {
        candle_core::bail!(
            "fused RoPE: unsupported x {:?} {:?}, table {:?}",
            x.dims(),
            x.dtype(),
            cos.dims()
        )
    }
    let (b, h, n, d) = x.dims4()?;
    let period = cos.dim(0)?;
    if period == 0 || n_rope > n {
        candle_core::bail!("fused RoPE: {n_rope} of {n} tokens with a {period}-row table")
    }
    let op = Rope {
        tokens: n,
        d,
        n_rope,
        period,
    };
    let xf = x.contiguous()?.reshape((b * h * n, d))?;
    xf.apply_op3_no_bwd(&cos.contiguous()?, &sin.contiguous()?, &op)?
        .reshape((b, h, n, d))
}

struct Rope {
    tokens: usize,
    d: usize,
    n_rope: usize,
    period: usize,
}

impl Rope {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        c: &CudaStorage,
        cl: &Layout,
        s: &CudaStorage,
        sl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let size = std::mem::size_of::<T>();
        for (name, l, sz) in [("x", xl, size), ("cos", cl, 4), ("sin", sl, 4)] {
            if !l.is_contiguous() {
                candle_core::bail!("fused RoPE: {name} must be contiguous")
            }
            if name == "x" && !(l.start_offset() * sz).is_multiple_of(16) {
                candle_core::bail!("fused RoPE: x must start 16-byte aligned")
            }
        }
        let dev = x.device().clone();
        let n = xl.shape().elem_count();
        let vec = 16 / size;
        let suffix = super::kernels::type_suffix(x.dtype());
        let func = super::kernels::function(&dev, "rope", FATBIN, &format!("rope_{suffix}"), 0)?;
        let xs = x.as_cuda_slice::<T>()?.slice(xl.start_offset()..);
        let cs = c.as_cuda_slice::<f32>()?.slice(cl.start_offset()..);
        let ss = s.as_cuda_slice::<f32>()?.slice(sl.start_offset()..);
        let y = unsafe { dev.alloc::<T>(n) }?;
        let n_vec = (n / vec) as u32;
        let (tokens, d, n_rope, period) = (
            self.tokens as u32,
            self.d as u32,
            self.n_rope as u32,
            self.period as u32,
        );
        let stream = dev.cuda_stream();
        let mut bld = stream.launch_builder(&func);
        bld.arg(&xs);
        bld.arg(&cs);
        bld.arg(&ss);
        bld.arg(&y);
        bld.arg(&n_vec);
        bld.arg(&tokens);
        bld.arg(&d);
        bld.arg(&n_rope);
        bld.arg(&period);
        unsafe { bld.launch(super::kernels::grid_1d(n_vec)) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(y, dev), xl.shape().clone()))
    }
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "vosbench-rope"
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
        candle_core::bail!("the fused RoPE op runs on CUDA tensors only")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        c: &CudaStorage,
        cl: &Layout,
        s: &CudaStorage,
        sl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        match x.dtype() {
            DType::F32 => self.launch::<f32>(x, xl, c, cl, s, sl),
            DType::F16 => self.launch::<half::f16>(x, xl, c, cl, s, sl),
            DType::BF16 => self.launch::<half::bf16>(x, xl, c, cl, s, sl),
            d => candle_core::bail!("fused RoPE: unsupported dtype {d:?}"),
        }
    }
}
