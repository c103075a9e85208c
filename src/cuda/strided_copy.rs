//! Strided -> contiguous copies on CUDA (src/cuda/kernels/strided_copy.cu): the copies behind
//! head splits and merges, window partitions and permuted reshapes. candle's own copy kernel
//! was the second-largest kernel of a SAM 2.1 frame in the ncu profile (docs/performance.md).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/strided_copy.fatbin"));
const MAX_RANK: usize = 6;

/// Dims and strides as the kernel takes them (by value).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Strided {
    rank: u32,
    dims: [u32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

// SAFETY: plain `repr(C)` integers, the layout of the kernel's `Strided` struct.
unsafe impl DeviceRepr for Strided {}

/// Drop unit dims and merge neighbours that are contiguous with each other.
fn merged(dims: &[usize], strides: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (&d, &s) in dims.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match out.last_mut() {
            Some((pd, ps)) if *ps == s * d => {
                *pd *= d;
                *ps = s;
            }
            _ => out.push((d, s)),
        }
    }
    out
}

fn strided(l: &Layout) -> Option<Strided> {
    let m = merged(l.dims(), l.stride());
    if m.len() > MAX_RANK {
        return None;
    }
    let mut s = Strided {
        rank: m.len() as u32,
        ..Default::default()
    };
    for (i, (d, st)) in m.iter().enumerate() {
        s.dims[i] = u32::try_from(*d).ok()?;
        s.strides[i] = u32::try_from(*st).ok()?;
    }
    Some(s)
}

/// `x.contiguous()`, through the fast kernel for non-contiguous CUDA f32/f16/bf16 tensors of
/// fewer than 2^32 elements whose merged layout has at most six dims; candle's copy otherwise.
pub fn contiguous(x: &Tensor) -> Result<Tensor> {
    if x.is_contiguous() {
        return Ok(x.clone());
    }
    let ok = x.device().is_cuda()
        && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && x.elem_count() < u32::MAX as usize
        && strided(x.layout()).is_some();
    if ok {
        x.apply_op1_no_bwd(&StridedCopy)
    } else {
        x.contiguous()
    }
}

struct StridedCopy;

impl StridedCopy {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        x: &CudaStorage,
        l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let s = strided(l).ok_or_else(|| candle_core::Error::Msg("strided copy: layout".into()))?;
        let dev = x.device().clone();
        let n = l.shape().elem_count();
        let name = if std::mem::size_of::<T>() == 2 {
            "strided_copy_b16"
        } else {
            "strided_copy_b32"
        };
        let func = super::kernels::function(&dev, "strided_copy", FATBIN, name, 0)?;
        let src = x.as_cuda_slice::<T>()?.slice(l.start_offset()..);
        let out = unsafe { dev.alloc::<T>(n) }?;
        let n_u = n as u32;
        let cfg = super::kernels::grid_1d(n_u);
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&func);
        b.arg(&src);
        b.arg(&out);
        b.arg(&n_u);
        b.arg(&s);
        unsafe { b.launch(cfg) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), l.shape().clone()))
    }
}

impl CustomOp1 for StridedCopy {
    fn name(&self) -> &'static str {
        "vosbench-strided-copy"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the strided-copy op runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, x: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        match x.dtype() {
            DType::F32 => self.launch::<f32>(x, l),
            DType::F16 => self.launch::<half::f16>(x, l),
            DType::BF16 => self.launch::<half::bf16>(x, l),
            d => candle_core::bail!("strided copy: unsupported dtype {d:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merged;

    #[test]
    fn merging_keeps_the_element_order() {
        // [2, 3, 4] contiguous -> one dim of 24
        assert_eq!(merged(&[2, 3, 4], &[12, 4, 1]), vec![(24, 1)]);
        // transpose(0, 1) of [2, 3, 4]: dims [3, 2, 4], strides [4, 12, 1]
        assert_eq!(
            merged(&[3, 2, 4], &[4, 12, 1]),
            vec![(3, 4), (2, 12), (4, 1)]
        );
        // unit dims vanish, the last two merge
        assert_eq!(
            merged(&[1, 5, 1, 2, 3], &[99, 1, 7, 9, 3]),
            vec![(5, 1), (6, 3)]
        );
    }
}
