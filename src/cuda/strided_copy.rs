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
    to_strided(&merged(l.dims(), l.stride()))
}

fn to_strided(m: &[(usize, usize)]) -> Option<Strided> {
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

/// The widest move (16, 8 bytes, else one element of `elem` bytes) for copying merged layout
/// `m` starting at element `start`: the innermost dim contiguous, and its length, every other
/// stride and the start all whole vectors. Returns the bytes per move and the layout in those
/// units (innermost dim and the other strides divided by the elements per move).
fn widest(m: &[(usize, usize)], start: usize, elem: usize) -> (usize, Vec<(usize, usize)>) {
    let Some(&(inner, inner_stride)) = m.last() else {
        return (elem, m.to_vec());
    };
    for bytes in [16, 8] {
        let k = bytes / elem;
        if k <= 1 {
            continue;
        }
        let fits = inner_stride == 1
            && inner.is_multiple_of(k)
            && start.is_multiple_of(k)
            && m[..m.len() - 1].iter().all(|&(_, st)| st.is_multiple_of(k));
        if fits {
            let mut v: Vec<(usize, usize)> = m[..m.len() - 1]
                .iter()
                .map(|&(d, st)| (d, st / k))
                .collect();
            v.push((inner / k, 1));
            return (bytes, v);
        }
    }
    (elem, m.to_vec())
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
        let elem = std::mem::size_of::<T>();
        let (bytes, m) = widest(&merged(l.dims(), l.stride()), l.start_offset(), elem);
        let s =
            to_strided(&m).ok_or_else(|| candle_core::Error::Msg("strided copy: layout".into()))?;
        let dev = x.device().clone();
        let n = l.shape().elem_count();
        let name = match bytes {
            16 => "strided_copy_b128",
            8 => "strided_copy_b64",
            4 => "strided_copy_b32",
            _ => "strided_copy_b16",
        };
        let func = super::kernels::function(&dev, "strided_copy", FATBIN, name, 0)?;
        let src = x.as_cuda_slice::<T>()?.slice(l.start_offset()..);
        let out = unsafe { dev.alloc::<T>(n) }?;
        // moves of `bytes` bytes; the kernel reads the buffers in those units
        let n_u = (n * elem / bytes) as u32;
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
    use super::{merged, widest};

    #[test]
    fn widest_move_fits_the_layout() {
        // window partition of a bf16 map, channels (96) innermost and contiguous: 16-byte moves
        let m = vec![(8, 96 * 64 * 8), (8, 96 * 8), (64, 96 * 64), (96, 1)];
        let (bytes, v) = widest(&m, 0, 2);
        assert_eq!(bytes, 16);
        assert_eq!(v, vec![(8, 96 * 64), (8, 96), (64, 96 * 8), (12, 1)]);
        // 4 contiguous bf16 at the inside: 8-byte moves
        assert_eq!(widest(&[(5, 40), (4, 1)], 0, 2).0, 8);
        // a start that is not a whole vector, or a strided inside: element moves
        assert_eq!(widest(&[(5, 40), (8, 1)], 3, 2).0, 2);
        assert_eq!(widest(&[(5, 1), (8, 5)], 0, 2).0, 2);
        // f32 needs 4 (16 bytes) or 2 (8 bytes) floats
        assert_eq!(widest(&[(3, 6), (2, 1)], 0, 4).0, 8);
        assert_eq!(widest(&[(3, 6), (3, 1)], 0, 4).0, 4);
    }

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
