//! How a session executes a model's forward: the per-session policy, passed down explicitly.
//!
//! An [`ExecCtx`] holds what may differ between two sessions running the same model in one
//! process: where a frame waits for the device (the memory fences), whether the image encoder's
//! trunk and a tracked frame's step replay as CUDA graphs, and which stage profiler (if any)
//! records the frame. A `tracker::session::Session` builds one when it opens, from its
//! `SessionOptions`, and passes `&ctx` to the model's forward methods
//! (`Sam2Base::forward_image_ctx`, `memory_conditioned_features_ctx`), which pass it on to the
//! image encoder, the Hiera blocks and the memory-attention layers. Leaf layers do not see it.
//! Nothing of it is process-wide, so a second session with other options does not change how the
//! first one runs.
//!
//! What is fixed when a model is built (convolution tuning, the fused-attention switch) is not
//! here but in `nn::ModelOptions`, held by the layers; what belongs to a device (the cuDNN handle
//! and plans, the workspace arena, the memory pool) stays in `crate::cuda`, keyed by device.

use crate::config::run::{FencePoint, FenceSet};
use crate::profile::{ProfileMode, Profiler};
use candle_core::Device;
use std::sync::Arc;

/// The execution policy of one session (see the module documentation). The default waits
/// nowhere, runs the trunk eagerly and profiles nothing: what tests and the parity runner use.
#[derive(Debug, Clone, Default)]
pub struct ExecCtx {
    fences: FenceSet,
    trunk_graph: bool,
    profiler: Option<Arc<Profiler>>,
}

impl ExecCtx {
    /// Wait at `fences`; graph the trunk when `trunk_graph` (and not profiling); record stages in
    /// `profiler`.
    pub fn new(fences: FenceSet, trunk_graph: bool, profiler: Option<Arc<Profiler>>) -> Self {
        Self {
            fences,
            trunk_graph,
            profiler,
        }
    }

    /// Where this session's frames wait for the device.
    pub fn fences(&self) -> FenceSet {
        self.fences
    }

    /// Whether the session asked for the trunk as a CUDA graph.
    pub fn trunk_graph(&self) -> bool {
        self.trunk_graph
    }

    /// Whether the trunk is graphed now: asked for, and not profiling (the profiler synchronizes
    /// inside the trunk, which a graph capture cannot contain, so profiling keeps it eager).
    pub fn graph_trunk(&self) -> bool {
        self.trunk_graph && self.profiler.is_none()
    }

    /// Whether the step of a tracked frame (memory attention, SAM heads, memory encoder;
    /// `tracker::step`) is graphed now: the session's one CUDA-graph switch covers it with the
    /// trunk, under the same rule.
    pub fn graph_step(&self) -> bool {
        self.graph_trunk()
    }

    /// The stage profiler this session reports to.
    pub fn profiler(&self) -> Option<&Arc<Profiler>> {
        self.profiler.as_ref()
    }

    /// A memory fence: on CUDA, wait for the device if `point` is in this session's set, unless
    /// this thread is capturing a CUDA graph (`cuda::graph::capturing`); elsewhere nothing. With
    /// the host running ahead of the device, a frame's allocations are served while the blocks
    /// its earlier work freed are still queued; measured on an H200, the pool then maps new
    /// memory instead of reusing them and its reserved peak grows frame after frame to 1.5-1.8x
    /// the live peak. Waiting once or twice a frame keeps it near the live size
    /// (docs/performance.md, "Peak memory").
    pub fn fence(&self, device: &Device, point: FencePoint) -> candle_core::Result<()> {
        if self.fences.contains(point)
            && matches!(device, Device::Cuda(_))
            && !crate::cuda::graph::capturing()
        {
            device.synchronize()?;
        }
        Ok(())
    }

    /// Run `f` as stage `name` on `device`: timed by the session's profiler when it has one,
    /// a plain call otherwise. Errors pass through unchanged.
    #[inline]
    pub fn stage<T, E: From<candle_core::Error>>(
        &self,
        name: &'static str,
        device: &Device,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.profiler {
            None => f(),
            Some(p) => p.stage(name, device, f),
        }
    }
}

/// The developer switches a run takes from its environment rather than from flags: read once by
/// the CLI (`VOSBENCH_PROFILE`, `VOSBENCH_ATTENTION`) and handed to whatever builds the run's
/// models and opens its sessions.
#[derive(Debug, Clone)]
pub struct EnvSwitches {
    /// `VOSBENCH_PROFILE`: the stage profiler every session of the run reports to; the CLI
    /// prints its table at exit.
    pub profiler: Option<Arc<Profiler>>,
    /// `VOSBENCH_ATTENTION=unfused` turns this off: models are built without the fused attention
    /// kernel (`nn::ModelOptions::fused_attention`), for A/B comparisons.
    pub fused_attention: bool,
}

impl Default for EnvSwitches {
    /// No profiler, fused attention.
    fn default() -> Self {
        Self {
            profiler: None,
            fused_attention: true,
        }
    }
}

impl EnvSwitches {
    /// The switches from the values of `VOSBENCH_PROFILE` and `VOSBENCH_ATTENTION` (None when
    /// unset): see [`ProfileMode::from_setting`]; attention is fused unless the second says
    /// `unfused`.
    pub fn from_settings(profile: Option<&str>, attention: Option<&str>) -> Self {
        Self {
            profiler: ProfileMode::from_setting(profile).map(|m| Arc::new(Profiler::new(m))),
            fused_attention: attention.is_none_or(|v| v.trim() != "unfused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_reports_its_own_policy() -> candle_core::Result<()> {
        let all = ExecCtx::new(FenceSet::all(), true, None);
        assert_eq!(all.fences(), FenceSet::all());
        assert!(all.trunk_graph() && all.graph_trunk());
        let p = Arc::new(Profiler::new(ProfileMode::Synchronized));
        let profiled = ExecCtx::new(FenceSet::NONE, true, Some(p.clone()));
        assert!(profiled.trunk_graph() && !profiled.graph_trunk());
        // Fences on the CPU return at once, whatever the set.
        for point in FencePoint::ALL {
            all.fence(&Device::Cpu, point)?;
        }
        profiled.stage("s", &Device::Cpu, || Ok::<_, candle_core::Error>(()))?;
        all.stage("s", &Device::Cpu, || Ok::<_, candle_core::Error>(()))?;
        assert_eq!(p.calls("s"), 1);
        let plain = ExecCtx::default();
        assert_eq!(plain.fences(), FenceSet::NONE);
        assert!(!plain.trunk_graph() && plain.profiler().is_none());
        Ok(())
    }

    #[test]
    fn switches_follow_the_environment_values() {
        let s = EnvSwitches::from_settings(None, None);
        assert!(s.profiler.is_none() && s.fused_attention);
        let s = EnvSwitches::from_settings(Some("host"), Some(" unfused "));
        assert!(s.profiler.as_ref().is_some_and(|p| p.host_only()));
        assert!(!s.fused_attention);
        let s = EnvSwitches::from_settings(Some("0"), Some("fused"));
        assert!(s.profiler.is_none() && s.fused_attention);
    }
}
