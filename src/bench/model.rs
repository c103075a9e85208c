//! What both phases do with a model: build it from its weights source, give it an object's
//! prompt, and set the convolution options of the run.

use crate::bench::plan::{BenchOptions, ObjectMeta, PromptKind, WeightsSource};
use crate::config::ModelConfig;
use crate::cuda::tuning::ConvOptions;
use crate::error::Result;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::{FrameResult, Prompt, Session};
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

/// The click or box prompt of an object for a prompt kind (None for `mask`, whose prompt is
/// the ground-truth mask: [`prompt_object`]).
pub fn object_prompt_for(o: &ObjectMeta, kind: PromptKind) -> Option<Prompt> {
    match kind {
        PromptKind::Points => Some(Prompt {
            points: vec![(o.point.0 as f32, o.point.1 as f32, 1)],
            bbox: None,
        }),
        PromptKind::Bbox => Some(Prompt {
            points: Vec::new(),
            bbox: Some(o.bbox.map(|v| v as f32)),
        }),
        PromptKind::Mask => None,
    }
}

/// Prompt object `o` as session object `obj_id` on its prompt frame: a click or box
/// (`add_new_points_or_box`) or its ground-truth mask there (`add_new_mask`).
pub fn prompt_object(
    session: &mut Session,
    obj_id: u32,
    o: &ObjectMeta,
    kind: PromptKind,
) -> Result<FrameResult> {
    prompt_object_at(session, o.prompt_frame, obj_id, o, kind)
}

/// [`prompt_object`] on session frame `frame` (the prompt frame's index in a session that is fed
/// a strided subset of the video's frames).
pub fn prompt_object_at(
    session: &mut Session,
    frame: usize,
    obj_id: u32,
    o: &ObjectMeta,
    kind: PromptKind,
) -> Result<FrameResult> {
    match object_prompt_for(o, kind) {
        Some(p) => session.add_prompt(frame, obj_id, &p),
        None => session.add_mask(frame, obj_id, &o.prompt_mask()?),
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
