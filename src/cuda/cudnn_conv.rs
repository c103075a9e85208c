//! The cuDNN convolution engine behind `nn::conv::Conv2d` on CUDA devices.
//!
//! What it does that candle's cuDNN path does not (rust-peers-and-candle-cuda.md §3):
//! - descriptors and the algorithm are built once per [`ConvShape`] and cached, not rebuilt on
//!   every call;
//! - the algorithm comes from the rules in [`crate::cuda::tuning`], under the options and choices
//!   of the [`ConvTuner`] the calling convolution holds: a loaded tuning file, a timed search
//!   capped at the workspace limit, or the first heuristic candidate that fits the limit; what
//!   was chosen is recorded in that tuner;
//! - grouped and depthwise convolutions run as one call with cuDNN's native group count;
//! - one workspace arena per device ([`crate::cuda::workspace`]), grown to the largest workspace a
//!   chosen algorithm needs and never beyond the limit, instead of a fresh zeroed allocation per
//!   call;
//! - the math type is set explicitly: FMA for f32 unless TF32 is allowed, tensor-op math for
//!   f16/bf16 (accumulating in f32, as PyTorch does);
//! - the bias is added in place by `cudnnAddTensor`.

use crate::cuda::tuning::{choose_algorithm, Candidate, ConvShape, ConvTuner, Source, TuningEntry};
use crate::cuda::workspace;
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, DeviceId};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape};
use cudarc::cudnn::sys::{
    self, cudnnConvolutionFwdAlgo_t as Algo, cudnnDataType_t, cudnnMathType_t as Math,
};
use cudarc::cudnn::{result, CudnnDataType};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceRepr};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Weak};

fn err(what: &str, e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Msg(format!("cudnn {what}: {e:?}"))
}

struct TensorDesc(sys::cudnnTensorDescriptor_t);
struct FilterDesc(sys::cudnnFilterDescriptor_t);
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);

impl Drop for TensorDesc {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_tensor_descriptor(self.0) };
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_filter_descriptor(self.0) };
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        let _ = unsafe { result::destroy_convolution_descriptor(self.0) };
    }
}

/// Everything one shape needs to launch.
struct Plan {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    bias: TensorDesc,
    conv: ConvDesc,
    algo: Algo,
    workspace: usize,
    /// The tuner's [`ConvTuner::generation`] the algorithm was chosen at.
    generation: u64,
}

/// The plans made for one tuner, dropped once the tuner is gone.
struct TunerPlans {
    tuner: Weak<ConvTuner>,
    plans: HashMap<ConvShape, Plan>,
}

/// Per device and thread: the cuDNN handle (bound to candle's stream) and the plans, per tuner
/// ([`ConvTuner::id`]) and shape.
///
/// These are process-wide (thread-local) because they belong to the device, not to a session: a
/// cuDNN handle is per device and not thread-safe, and a plan is a tuner's decision for one
/// shape made concrete on this device (descriptors, algorithm, workspace size). Keyed by tuner,
/// two models with different options never share or overwrite each other's plans.
struct Engine {
    handle: sys::cudnnHandle_t,
    stream: Arc<CudaStream>,
    tuners: HashMap<u64, TunerPlans>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tuners.clear();
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

thread_local! {
    static ENGINES: RefCell<HashMap<DeviceId, Engine>> = RefCell::new(HashMap::new());
}

const ALGOS: [Algo; 8] = [
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_FFT,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
    Algo::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
];

fn algo_name(a: Algo) -> String {
    format!("{a:?}")
        .trim_start_matches("CUDNN_CONVOLUTION_FWD_ALGO_")
        .to_string()
}

fn math_name(m: Math) -> String {
    match m {
        Math::CUDNN_DEFAULT_MATH => "DEFAULT",
        Math::CUDNN_TENSOR_OP_MATH => "TENSOR_OP",
        Math::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION => "TENSOR_OP_CONV",
        Math::CUDNN_FMA_MATH => "FMA",
    }
    .to_string()
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// The math type a convolution of `dtype` runs with under the current options.
fn math_for(dtype: &str, tf32: bool) -> Math {
    match dtype {
        "f32" if !tf32 => Math::CUDNN_FMA_MATH,
        "f32" => Math::CUDNN_DEFAULT_MATH,
        _ => Math::CUDNN_TENSOR_OP_MATH,
    }
}

impl Engine {
    fn new(stream: Arc<CudaStream>) -> Result<Self> {
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| err("bind context", e))?;
        let handle = result::create_handle().map_err(|e| err("create handle", e))?;
        unsafe { result::set_stream(handle, stream.cu_stream() as *mut _) }
            .map_err(|e| err("set stream", e))?;
        Ok(Self {
            handle,
            stream,
            tuners: HashMap::new(),
        })
    }

    /// Descriptors for `shape` (algorithm not chosen yet).
    fn descriptors(
        shape: &ConvShape,
        dt: cudnnDataType_t,
        math: Math,
    ) -> Result<(TensorDesc, FilterDesc, TensorDesc, TensorDesc, ConvDesc)> {
        let i = |v: usize| v as i32;
        let (oh, ow) = shape.out_hw();
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let tensor = |dims: [i32; 4]| -> Result<TensorDesc> {
            let d = TensorDesc(result::create_tensor_descriptor().map_err(|e| err("tensor", e))?);
            unsafe { result::set_tensor4d_descriptor(d.0, nchw, dt, dims) }
                .map_err(|e| err("tensor", e))?;
            Ok(d)
        };
        let x = tensor([i(shape.n), i(shape.c), i(shape.h), i(shape.w)])?;
        let y = tensor([i(shape.n), i(shape.k), i(oh), i(ow)])?;
        let bias = tensor([1, i(shape.k), 1, 1])?;
        let w = FilterDesc(result::create_filter_descriptor().map_err(|e| err("filter", e))?);
        let wdims = [
            i(shape.k),
            i(shape.c / shape.groups),
            i(shape.r),
            i(shape.s),
        ];
        unsafe { result::set_filter4d_descriptor(w.0, dt, nchw, wdims) }
            .map_err(|e| err("filter", e))?;
        let conv = ConvDesc(result::create_convolution_descriptor().map_err(|e| err("conv", e))?);
        unsafe {
            result::set_convolution2d_descriptor(
                conv.0,
                i(shape.pad),
                i(shape.pad),
                i(shape.stride),
                i(shape.stride),
                i(shape.dilation),
                i(shape.dilation),
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                // f32 accumulation for every input type (PyTorch's choice for half types).
                cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
            .map_err(|e| err("conv", e))?;
            result::set_convolution_group_count(conv.0, i(shape.groups))
                .map_err(|e| err("group count", e))?;
            result::set_convolution_math_type(conv.0, math).map_err(|e| err("math type", e))?;
        }
        Ok((x, w, y, bias, conv))
    }

    fn workspace_size(&self, p: &Plan, algo: Algo) -> Option<usize> {
        let mut size = 0usize;
        let st = unsafe {
            sys::cudnnGetConvolutionForwardWorkspaceSize(
                self.handle,
                p.x.0,
                p.w.0,
                p.conv.0,
                p.y.0,
                algo,
                &mut size,
            )
        };
        (st == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS).then_some(size)
    }

    /// cuDNN's heuristic ranking; the first candidate that succeeds within `limit`.
    fn heuristic(&self, p: &Plan, limit: usize) -> Result<(Algo, usize, Math)> {
        let mut perf = [unsafe { std::mem::zeroed::<sys::cudnnConvolutionFwdAlgoPerf_t>() }; 8];
        let mut n = 0i32;
        unsafe {
            result::get_convolution_forward_algorithm(
                self.handle,
                p.x.0,
                p.w.0,
                p.conv.0,
                p.y.0,
                8,
                &mut n,
                perf.as_mut_ptr(),
            )
        }
        .map_err(|e| err("heuristic", e))?;
        for r in &perf[..n.max(0) as usize] {
            if r.status != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
                continue;
            }
            // The heuristic's memory field is an estimate; ask for the exact size.
            if let Some(ws) = self.workspace_size(p, r.algo) {
                if ws <= limit {
                    return Ok((r.algo, ws, r.mathType));
                }
            }
        }
        // Implicit GEMM needs no workspace and supports every configuration.
        let a = Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        Ok((
            a,
            self.workspace_size(p, a).unwrap_or(0),
            Math::CUDNN_DEFAULT_MATH,
        ))
    }

    /// Time the candidates on the real input and filter; Err(reason) if the search cannot run.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        p: &Plan,
        limit: usize,
        x: CUdeviceptr,
        w: CUdeviceptr,
        y_elems: usize,
        elem_size: usize,
    ) -> std::result::Result<Vec<sys::cudnnConvolutionFwdAlgoPerf_t>, String> {
        // Scratch output (the search writes it) and a workspace capped at the limit; both from
        // the stream's pool, freed when the search ends.
        let mut y = unsafe { self.stream.alloc::<u8>(y_elems * elem_size) }
            .map_err(|e| format!("no memory for the search's output ({e})"))?;
        let mut ws = if limit > 0 {
            Some(unsafe { self.stream.alloc::<u8>(limit) }.map_err(|e| {
                format!("no memory for a {} MiB search workspace ({e})", limit >> 20)
            })?)
        } else {
            None
        };
        let mut perf = [unsafe { std::mem::zeroed::<sys::cudnnConvolutionFwdAlgoPerf_t>() }; 8];
        let mut n = 0i32;
        let st = {
            let (yp, _gy) = y.device_ptr_mut(&self.stream);
            let (wsp, _gw) = match ws.as_mut() {
                Some(b) => {
                    let (ptr, g) = b.device_ptr_mut(&self.stream);
                    (ptr as *mut c_void, Some(g))
                }
                None => (std::ptr::null_mut(), None),
            };
            unsafe {
                sys::cudnnFindConvolutionForwardAlgorithmEx(
                    self.handle,
                    p.x.0,
                    x as *const c_void,
                    p.w.0,
                    w as *const c_void,
                    p.conv.0,
                    p.y.0,
                    yp as *mut c_void,
                    8,
                    &mut n,
                    perf.as_mut_ptr(),
                    wsp,
                    limit,
                )
            }
        };
        if st != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            return Err(format!("search failed: {st:?}"));
        }
        Ok(perf[..n.max(0) as usize]
            .iter()
            .filter(|r| r.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS && r.memory <= limit)
            .copied()
            .collect())
    }

    /// The plan for `shape` under `tuner`, choosing its algorithm if needed.
    fn plan(
        &mut self,
        tuner: &Arc<ConvTuner>,
        shape: &ConvShape,
        dt: cudnnDataType_t,
        x: CUdeviceptr,
        w: CUdeviceptr,
        elem_size: usize,
    ) -> Result<&Plan> {
        let (id, generation) = (tuner.id(), tuner.generation());
        if self
            .tuners
            .get(&id)
            .and_then(|t| t.plans.get(shape))
            .is_some_and(|p| p.generation == generation)
        {
            return Ok(&self.tuners[&id].plans[shape]);
        }
        // Not planned for this tuner yet: first drop the plans of tuners that are gone.
        self.tuners.retain(|_, t| t.tuner.strong_count() > 0);
        let opts = tuner.options();
        let limit = opts.workspace_limit_bytes;
        let math = math_for(&shape.dtype, opts.tf32);
        let (xd, wd, yd, bd, cd) = Self::descriptors(shape, dt, math)?;
        let mut plan = Plan {
            x: xd,
            w: wd,
            y: yd,
            bias: bd,
            conv: cd,
            algo: Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            workspace: 0,
            generation,
        };
        // 1. a recorded choice (loaded, or made earlier with this tuner) that still fits
        let prior = tuner.choice(shape).and_then(|e| {
            let a = *ALGOS.get(e.algo_id as usize)?;
            let ws = self.workspace_size(&plan, a)?;
            (ws <= limit && e.math == math_name(math)).then_some((a, ws, e))
        });
        let entry = if let Some((a, ws, e)) = prior {
            plan.algo = a;
            plan.workspace = ws;
            TuningEntry {
                workspace_bytes: ws as u64,
                ..e
            }
        } else {
            // Rules 2 and 3: a timed search within the limit (tuning on), the heuristic choice
            // otherwise or when the search cannot run for this shape.
            let (oh, ow) = shape.out_hw();
            let y_elems = shape.n * shape.k * oh * ow;
            let this = &*self;
            let p = &plan;
            let chosen = choose_algorithm(
                shape,
                &math_name(math),
                opts.tune,
                || {
                    this.search(p, limit, x, w, y_elems, elem_size)
                        .map(|found| {
                            found
                                .iter()
                                .map(|r| Candidate {
                                    algo_id: r.algo as u32,
                                    algo: algo_name(r.algo),
                                    time_ms: Some(r.time),
                                    workspace_bytes: r.memory as u64,
                                })
                                .collect()
                        })
                },
                || {
                    let (a, ws, _) = this.heuristic(p, limit)?;
                    Ok(Candidate {
                        algo_id: a as u32,
                        algo: algo_name(a),
                        time_ms: None,
                        workspace_bytes: ws as u64,
                    })
                },
            )?;
            let algo = *ALGOS
                .get(chosen.algo_id as usize)
                .ok_or_else(|| err("algorithm id", chosen.algo_id))?;
            plan.algo = algo;
            plan.workspace = self
                .workspace_size(&plan, algo)
                .unwrap_or(chosen.workspace_bytes as usize);
            if chosen.source == Source::Fallback {
                eprintln!(
                    "cudnn tuning: {}: {}; using the heuristic choice {}",
                    shape.describe(),
                    chosen.note.as_deref().unwrap_or(""),
                    chosen.algo
                );
            }
            TuningEntry {
                workspace_bytes: plan.workspace as u64,
                ..chosen
            }
        };
        tuner.record(entry);
        let plans = &mut self
            .tuners
            .entry(id)
            .or_insert_with(|| TunerPlans {
                tuner: Arc::downgrade(tuner),
                plans: HashMap::new(),
            })
            .plans;
        plans.insert(shape.clone(), plan);
        Ok(&plans[shape])
    }
}

/// The convolution op: x [N, C, H, W], w [K, C/groups, R, S], optional bias [K], with the
/// algorithm choices of `tuner`.
#[derive(Debug, Clone, Copy)]
pub struct CudnnConv2d<'a> {
    pub pad: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
    pub tuner: &'a Arc<ConvTuner>,
}

impl CudnnConv2d<'_> {
    fn shape(&self, xl: &Layout, wl: &Layout, dtype: DType) -> Result<ConvShape> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let (k, cg, r, s) = wl.shape().dims4()?;
        if cg * self.groups != c || k % self.groups != 0 {
            candle_core::bail!(
                "conv2d: input has {c} channels, filter {k}x{cg} with {} groups",
                self.groups
            )
        }
        if h + 2 * self.pad < self.dilation * (r - 1) + 1
            || w + 2 * self.pad < self.dilation * (s - 1) + 1
        {
            candle_core::bail!("conv2d: kernel {r}x{s} larger than the padded {h}x{w} input")
        }
        Ok(ConvShape {
            n,
            c,
            h,
            w,
            k,
            r,
            s,
            pad: self.pad,
            stride: self.stride,
            dilation: self.dilation,
            groups: self.groups,
            dtype: dtype_name(dtype).into(),
        })
    }

    fn launch<T: CudaDType + DeviceRepr + CudnnDataType>(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        b: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        if !xl.is_contiguous() || !wl.is_contiguous() {
            candle_core::bail!("cudnn conv2d: input and filter must be contiguous")
        }
        let dev: CudaDevice = x.device().clone();
        let shape = self.shape(xl, wl, x.dtype())?;
        let (oh, ow) = shape.out_hw();
        let out_shape = Shape::from((shape.n, shape.k, oh, ow));
        let xs = x.as_cuda_slice::<T>()?.slice(xl.start_offset()..);
        let ws = w.as_cuda_slice::<T>()?.slice(wl.start_offset()..);
        let bs = match b {
            Some((b, bl)) => {
                if bl.shape().dims1()? != shape.k || !bl.is_contiguous() {
                    candle_core::bail!("cudnn conv2d: bias must be a contiguous [{}]", shape.k)
                }
                Some(b.as_cuda_slice::<T>()?.slice(bl.start_offset()..))
            }
            None => None,
        };
        let mut y = unsafe { dev.alloc::<T>(out_shape.elem_count()) }?;
        let stream = dev.cuda_stream();
        ENGINES.with(|engines| -> Result<()> {
            let mut engines = engines.borrow_mut();
            let eng = match engines.entry(dev.id()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Engine::new(stream.clone())?)
                }
            };
            let (xp, _gx) = xs.device_ptr(&stream);
            let (wp, _gw) = ws.device_ptr(&stream);
            let (yp, _gy) = y.device_ptr_mut(&stream);
            let size = std::mem::size_of::<T>();
            let handle = eng.handle;
            let p = eng.plan(self.tuner, &shape, T::DATA_TYPE, xp, wp, size)?;
            workspace::with_workspace(dev.id(), &stream, p.workspace, |wsp| {
                let (one, zero) = (1f32, 0f32);
                unsafe {
                    sys::cudnnConvolutionForward(
                        handle,
                        &one as *const f32 as *const c_void,
                        p.x.0,
                        xp as *const c_void,
                        p.w.0,
                        wp as *const c_void,
                        p.conv.0,
                        p.algo,
                        wsp,
                        p.workspace,
                        &zero as *const f32 as *const c_void,
                        p.y.0,
                        yp as *mut c_void,
                    )
                    .result()
                    .map_err(|e| err(&format!("forward {}", shape.describe()), e))?;
                    if let Some(bs) = &bs {
                        let (bp, _gb) = bs.device_ptr(&stream);
                        sys::cudnnAddTensor(
                            handle,
                            &one as *const f32 as *const c_void,
                            p.bias.0,
                            bp as *const c_void,
                            &one as *const f32 as *const c_void,
                            p.y.0,
                            yp as *mut c_void,
                        )
                        .result()
                        .map_err(|e| err("bias", e))?;
                    }
                }
                Ok(())
            })
        })?;
        Ok((CudaStorage::wrap_cuda_slice(y, dev), out_shape))
    }

    fn dispatch(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        b: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        match x.dtype() {
            DType::F32 => self.launch::<f32>(x, xl, w, wl, b),
            DType::F16 => self.launch::<half::f16>(x, xl, w, wl, b),
            DType::BF16 => self.launch::<half::bf16>(x, xl, w, wl, b),
            d => candle_core::bail!("cudnn conv2d: unsupported dtype {d:?}"),
        }
    }
}

fn cpu_unreachable() -> Result<(CpuStorage, Shape)> {
    candle_core::bail!("the cuDNN convolution op runs on CUDA tensors only")
}

impl CustomOp2 for CudnnConv2d<'_> {
    fn name(&self) -> &'static str {
        "cudnn-conv2d"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_unreachable()
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.dispatch(x, xl, w, wl, None)
    }
}

impl CustomOp3 for CudnnConv2d<'_> {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-bias"
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
        cpu_unreachable()
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
        self.dispatch(x, xl, w, wl, Some((b, bl)))
    }
}
