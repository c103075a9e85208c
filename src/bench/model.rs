//! What both phases do with a model: build it from its weights source, give it an object's
//! prompt, and set the convolution options of the run.

use crate::bench::plan::{BenchOptions, ObjectMeta, PromptKind, WeightsSource};
use crate::config::ModelConfig;
use crate::cuda::tuning::ConvOptions;
use crate::error::Result;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::Prompt;
use candle_core::{DType, Device};

/// Build a model from its weights source, with the run's build-time options.
pub fn build_model(
    cfg: &ModelConfig,
    weights: &WeightsSource,
    dtype: DType,
    device: &Device,
    model_opts: &ModelOptions,
) -> Result<Sam2Base> {
    let vb = match weights {
        WeightsSource::Checkpoint { path } => {
            crate::weights::load_var_builder(path, cfg, dtype, device)?
        }
        WeightsSource::Random { seed, .. } => {
            crate::weights::random::random_var_builder(*seed, dtype, device)
        }
    };
    Ok(Sam2Base::new_with(cfg, model_opts, vb)?)
}

/// The tracker prompt of an object for a prompt kind.
pub fn object_prompt_for(o: &ObjectMeta, kind: PromptKind) -> Prompt {
    match kind {
        PromptKind::Points => Prompt {
            points: vec![(o.point.0 as f32, o.point.1 as f32, 1)],
            bbox: None,
        },
        PromptKind::Bbox => Prompt {
            points: Vec::new(),
            bbox: Some(o.bbox.map(|v| v as f32)),
        },
    }
}

/// The convolution settings of a run: the workspace limit and TF32 from the options, the
/// algorithm search only when asked for and cuDNN runs the convolutions (setup only).
pub fn conv_options(opts: &BenchOptions, device: &Device, search: bool) -> ConvOptions {
    ConvOptions::new(
        opts.workspace_mb,
        opts.tf32,
        search && opts.enable_cudnn_tuning && device.is_cuda() && cfg!(feature = "cudnn"),
    )
}
