//! CUDA graphs for fixed-shape pieces of a frame: the image encoder's trunk, and the step of a
//! tracked frame (memory attention, SAM heads, memory encoder).
//!
//! In half precision a frame is bound by the host issuing kernels: the Hiera trunk alone is a few
//! hundred candle ops per frame, the step of a tracked frame several hundred more, each costing
//! microseconds of host time, and the device waits for them (docs/performance.md, "CUDA graphs").
//! Both see the same shapes on every frame once the memory bank is full, so their kernels can be
//! recorded once with stream capture and replayed with one launch. [`GraphedFn::run_with`] does
//! that:
//!
//! 1. the first call with a new key (the shapes and dtypes of its inputs, plus a caller's tag of
//!    host values the function depends on) runs eagerly with candle's parameter cache on
//!    (`enable_cuda_graph_htod_cache`: the shape/stride vectors of strided kernels and other small
//!    uploads are made once and reused, because a graph cannot capture an upload from host
//!    memory), which also loads every module, plans every convolution and grows the workspace
//!    arena;
//! 2. the second call with that key copies its inputs into buffers the graph owns the addresses
//!    of, captures the function on candle's stream, instantiates the graph (allocations inside it
//!    come from the driver's graph memory pool and are freed again on the next launch) and
//!    launches it;
//! 3. later calls with that key copy the inputs in, launch, and copy the outputs out into
//!    ordinary tensors (the graph's own outputs are overwritten by the next launch).
//!
//! A new key starts again at step 1 and drops the old graph: one graph per [`GraphedFn`], so a
//! caller whose key alternates every call stays eager. A capture that fails (an op that cannot be
//! captured, such as a copy to the host) leaves the function eager for good and says why in
//! [`GraphedFn::status`]. A graph holds the convolution workspace arena's address; when the arena
//! moves (grows or is released, [`crate::cuda::workspace::generation`] goes up) the next call
//! starts again at step 1. Results are those of the eager kernels: the same kernels run on the
//! same data.
//!
//! What a replay cannot see is a host value that changed: anything the function uploads is
//! frozen at its captured value. So the function must compute everything from its input tensors,
//! and every host value it reads (a count, a flag, a layout) must be in the tag. An upload whose
//! bytes differ between the warm-up and the capture makes the capture fail ("missing cached host
//! data") rather than record a stale value.
//!
//! Whether a call may be graphed is the caller's decision, passed to [`GraphedFn::run_with`] (a
//! session's execution context says so, `crate::exec::ExecCtx`); nothing here is process-wide
//! except the capture state of [`capturing`], which is genuinely per thread: stream capture
//! records what one thread issues, and only that thread must not synchronise meanwhile.

use candle_core::{Result, Tensor};

thread_local! {
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is recording a graph right now (device synchronisation is not allowed
/// then, so memory fences skip their wait).
pub fn capturing() -> bool {
    CAPTURING.with(|c| c.get())
}

/// What a graph is recorded for: the caller's tag of host values, then the shape and dtype of
/// every input.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    tag: Vec<usize>,
    inputs: Vec<(Vec<usize>, candle_core::DType)>,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl Key {
    fn new(tag: &[usize], inputs: &[Tensor]) -> Self {
        Self {
            tag: tag.to_vec(),
            inputs: inputs
                .iter()
                .map(|t| (t.dims().to_vec(), t.dtype()))
                .collect(),
        }
    }
}

/// The per-key state of one [`GraphedFn`].
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
enum State {
    /// Nothing run yet, or the last graph was invalidated.
    Idle,
    /// One eager run with the parameter cache done for this input shape and arena generation.
    Warm { key: Key, generation: u64 },
    #[cfg(feature = "cuda")]
    Captured(imp::Captured),
    /// Capture failed; the function runs eagerly from now on.
    Failed(String),
}

/// A function of some tensors run through a CUDA graph once it has seen the same key twice in a
/// row (see the module documentation). On CPU, or when the caller does not ask for a graph (graphs
/// off for the session, or stage profiling, which synchronises inside), it is a plain call.
pub struct GraphedFn {
    state: std::sync::Mutex<State>,
}

impl std::fmt::Debug for GraphedFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphedFn({})", self.status())
    }
}

impl Default for GraphedFn {
    fn default() -> Self {
        Self {
            state: std::sync::Mutex::new(State::Idle),
        }
    }
}

impl GraphedFn {
    /// `off` (never graphed), `eager` (warming up), `captured`, or `failed: <why>`.
    pub fn status(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            State::Idle => "off".into(),
            State::Warm { .. } => "eager".into(),
            #[cfg(feature = "cuda")]
            State::Captured(_) => "captured".into(),
            State::Failed(why) => format!("failed: {why}"),
        }
    }

    /// `f(x)`, through a CUDA graph when `graphed` and possible. `f` must be a pure function of
    /// `x` (same kernels for the same input shape) that leaves no device work behind except its
    /// outputs.
    pub fn run(
        &self,
        x: &Tensor,
        graphed: bool,
        f: &dyn Fn(&Tensor) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        self.run_with(std::slice::from_ref(x), &[], graphed, &|xs| f(&xs[0]))
    }

    /// `f(inputs)`, through a CUDA graph when `graphed` and possible. `f` must compute its
    /// outputs from `inputs` alone, with the same kernels whenever the inputs have the same
    /// shapes and dtypes and `tag` is the same: every host value `f` depends on belongs in `tag`.
    /// It must leave no device work behind except its outputs. `inputs` must not be empty.
    pub fn run_with(
        &self,
        inputs: &[Tensor],
        tag: &[usize],
        graphed: bool,
        f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        #[cfg(feature = "cuda")]
        if let Some(candle_core::Device::Cuda(dev)) = inputs.first().map(|t| t.device()) {
            if graphed && !capturing() {
                return imp::run(&self.state, dev, inputs, tag, f);
            }
        }
        #[cfg(not(feature = "cuda"))]
        let _ = (graphed, tag);
        f(inputs)
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use super::{Key, State, CAPTURING};
    use crate::cuda::workspace;
    use candle_core::{CudaDevice, Result, Tensor};
    use cudarc::driver::sys;
    use cudarc::driver::CudaGraph;
    use std::sync::Mutex;

    /// A recorded graph with the buffers whose addresses it holds.
    pub(super) struct Captured {
        key: Key,
        generation: u64,
        /// The graph's outputs (its own allocations, rewritten by every launch); dropped first.
        outputs: Vec<Tensor>,
        graph: CudaGraph,
        /// Where the graph reads its inputs.
        inputs: Vec<Tensor>,
    }

    // SAFETY: a CudaGraph is only used under the GraphedFn's mutex, from one thread at a time.
    unsafe impl Send for Captured {}

    impl Captured {
        fn launch(&self, xs: &[Tensor]) -> Result<Vec<Tensor>> {
            for (buf, x) in self.inputs.iter().zip(xs) {
                buf.slice_set(&x.contiguous()?, 0, 0)?;
            }
            self.graph.launch().map_err(candle_core::Error::wrap)?;
            self.outputs.iter().map(|t| t.copy()).collect()
        }
    }

    pub(super) fn run(
        state: &Mutex<State>,
        dev: &CudaDevice,
        xs: &[Tensor],
        tag: &[usize],
        f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        let key = Key::new(tag, xs);
        let generation = workspace::generation();
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            State::Failed(_) => return f(xs),
            State::Captured(c) if c.key == key && c.generation == generation => {
                return c.launch(xs)
            }
            State::Warm {
                key: k,
                generation: g,
            } if *k == key && *g == generation => {
                return match capture(dev, xs, f, key, generation) {
                    Ok(c) => {
                        let out = c.launch(xs)?;
                        *st = State::Captured(c);
                        Ok(out)
                    }
                    Err(why) => {
                        *st = State::Failed(why);
                        f(xs)
                    }
                };
            }
            _ => {}
        }
        // A new key, or the old graph refers to memory that moved: warm up eagerly.
        *st = State::Idle;
        let out = {
            let _cache = dev.enable_cuda_graph_htod_cache();
            f(xs)?
        };
        *st = State::Warm {
            key,
            generation: workspace::generation(),
        };
        Ok(out)
    }

    fn capture(
        dev: &CudaDevice,
        xs: &[Tensor],
        f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
        key: Key,
        generation: u64,
    ) -> std::result::Result<Captured, String> {
        let stream = dev.cuda_stream();
        let _cache = dev.enable_cuda_graph_htod_cache();
        let inputs = xs
            .iter()
            .map(|x| x.contiguous().and_then(|t| t.copy()))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| format!("input buffer: {e}"))?;
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| format!("begin capture: {e}"))?;
        CAPTURING.with(|c| c.set(true));
        let res = f(&inputs);
        let end = stream.end_capture(
            sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
        );
        CAPTURING.with(|c| c.set(false));
        let moved = workspace::generation() != generation;
        let why = match (res, end) {
            (Ok(outputs), Ok(Some(graph))) if !moved => {
                return Ok(Captured {
                    key,
                    generation,
                    outputs,
                    graph,
                    inputs,
                })
            }
            (Ok(outputs), end) => {
                // Addresses of an abandoned capture: never to be freed.
                std::mem::forget(outputs);
                match end {
                    Err(e) => format!("end capture: {e}"),
                    Ok(None) => "end capture returned no graph".into(),
                    Ok(Some(_)) => "the convolution workspace moved while capturing".into(),
                }
            }
            (Err(e), _) => e.to_string(),
        };
        if moved {
            // The arena was reallocated inside the capture: its address is not real memory.
            workspace::release();
        }
        // Frees of capture addresses after the capture ended leave an error on the context.
        let _ = stream.context().check_err();
        Err(why.lines().next().unwrap_or("").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn off_the_gpu_it_is_a_plain_call() -> Result<()> {
        // Asking for graphs changes nothing on the CPU: every call runs `f`, nothing is captured.
        let g = GraphedFn::default();
        let calls = std::cell::Cell::new(0);
        let f = |x: &Tensor| -> Result<Vec<Tensor>> {
            calls.set(calls.get() + 1);
            Ok(vec![(x * 2.0)?, x.sum_all()?])
        };
        let x = Tensor::arange(0f32, 6., &Device::Cpu)?.reshape((2, 3))?;
        for _ in 0..3 {
            let out = g.run(&x, true, &f)?;
            assert_eq!(out[0].to_vec2::<f32>()?, [[0., 2., 4.], [6., 8., 10.]]);
            assert_eq!(out[1].to_scalar::<f32>()?, 15.);
        }
        assert_eq!(calls.get(), 3);
        assert_eq!(g.status(), "off");
        assert!(!capturing());
        Ok(())
    }

    #[test]
    fn several_inputs_and_a_tag_off_the_gpu() -> Result<()> {
        // run_with hands every input to `f` in order; on the CPU the tag changes nothing.
        let g = GraphedFn::default();
        let a = Tensor::new(&[1f32, 2.], &Device::Cpu)?;
        let b = Tensor::new(&[10f32, 20.], &Device::Cpu)?;
        for tag in [[1usize], [2]] {
            let out = g.run_with(&[a.clone(), b.clone()], &tag, true, &|xs| {
                Ok(vec![((&xs[0] * tag[0] as f64)? + &xs[1])?])
            })?;
            assert_eq!(
                out[0].to_vec1::<f32>()?,
                [10. + tag[0] as f32, 20. + 2. * tag[0] as f32]
            );
        }
        assert_eq!(g.status(), "off");
        let k1 = Key::new(&[1], &[a.clone(), b.clone()]);
        assert_eq!(k1, Key::new(&[1], &[b.clone(), a.clone()]));
        assert_ne!(k1, Key::new(&[2], &[a.clone(), b.clone()]));
        assert_ne!(k1, Key::new(&[1], std::slice::from_ref(&a)));
        assert_ne!(
            k1,
            Key::new(&[1], &[a.to_dtype(candle_core::DType::F16)?, b])
        );
        Ok(())
    }
}
