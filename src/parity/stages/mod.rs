//! The stage runner: build the model from the fixture's weights and compare every stage a stage
//! fixture holds (`make_sam2_fixtures.py`, `make_edgetam_fixtures.py`), one family per file:
//! [`trunk`] (Hiera blocks, RepViT taps), [`encoder`] (neck, image encoder, `forward_image`),
//! [`heads`] (prompt encoder, mask decoder, `_forward_sam_heads`), [`memory`] (memory encoder,
//! perceiver, memory attention) and [`glue`] (`_encode_new_memory`, the object-pointer temporal
//! encoding, `_prepare_memory_conditioned_features`).
//!
//! Every stage is fed the reference's own inputs (moved to the device), except the stages whose
//! input is the frame itself (trunk outputs, RepViT intermediates, the image-encoder outputs):
//! those run from the fixture image, as the model does. Stages a fixture does not hold are
//! skipped; a stage whose output is present but whose input is not is an input error naming the
//! missing tensor.

mod encoder;
mod glue;
mod heads;
mod memory;
mod trunk;

use crate::compare::{compare, Feed, StageResult};
use crate::config::{ModelConfig, TrunkConfig};
use crate::error::{Error, Result};
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeSet, HashMap};

/// Build the model described by `cfg` from `weights` on `device` (f32) and compare every stage
/// `stages` holds (see the module docs). Results are in pipeline order.
pub fn run_stages(
    cfg: &ModelConfig,
    weights: VarBuilder,
    stages: &HashMap<String, Tensor>,
    device: &Device,
) -> Result<Vec<StageResult>> {
    run_stages_with(cfg, weights, stages, device, &ModelOptions::default())
}

/// [`run_stages`] with the model built with `model_opts` (the CLI's convolution settings).
pub fn run_stages_with(
    cfg: &ModelConfig,
    weights: VarBuilder,
    stages: &HashMap<String, Tensor>,
    device: &Device,
    model_opts: &ModelOptions,
) -> Result<Vec<StageResult>> {
    let mut fx = Fx {
        t: stages,
        dev: device,
        out: Vec::new(),
    };
    let levels = cfg.image_encoder.neck.backbone_channel_list.len();
    match &cfg.image_encoder.trunk {
        TrunkConfig::Hiera(h) if fx.any_prefix("trunk.") => {
            trunk::hiera_stages(&mut fx, h, &weights, model_opts, cfg.image_size, levels)?;
        }
        TrunkConfig::Repvit(r) if fx.any_prefix("trunk.") => {
            trunk::repvit_stages(&mut fx, r, &weights, model_opts)?;
        }
        _ => {}
    }
    let model = Sam2Base::new_with(cfg, model_opts, weights)?;
    encoder::encoder_stages(&mut fx, &model, levels)?;
    heads::head_stages(&mut fx, &model, cfg)?;
    memory::memory_stages(&mut fx, &model, cfg)?;
    glue::glue_stages(&mut fx, &model, cfg)?;
    Ok(fx.out)
}

/// The fixture tensors that are inputs of some stage (never compared themselves).
pub fn is_input(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "image",
        "prompt.mask.input",
        "decoder.image_embeddings",
        "decoder.high_res.0",
        "decoder.high_res.1",
        "memenc.pix_feat",
        "memenc.mask",
        "perceiver.in.features",
        "perceiver.in.pos",
        "memattn.curr",
        "memattn.curr_pos",
        "memattn.memory",
        "memattn.memory_pos",
        "memattn.num_obj_ptr_tokens",
        "memattn.num_spatial_mem",
        "encode_new_memory.input_vision_feat",
        "obj_ptr_tpos.input",
        "obj_ptr_tpos.max_ptr",
        "prepare_memory.maskmem_pos_enc",
        "prepare_memory.frame_idx",
        "prepare_memory.num_frames",
    ];
    if EXACT.contains(&name) {
        return true;
    }
    let suffix_of = |prefix: &str, suffixes: &[&str]| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once('.'))
            .is_some_and(|(_, last)| suffixes.contains(&last))
    };
    (name.starts_with("prompt.") && suffix_of("prompt.", &["coords", "labels"]))
        || suffix_of(
            "encode_new_memory.",
            &[
                "pred_masks_high_res",
                "object_score_logits",
                "is_mask_from_pts",
            ],
        )
        || name.starts_with("prepare_memory.maskmem_features.")
        || name.starts_with("prepare_memory.obj_ptr.")
}

/// Fixture tensors that are neither inputs nor among `results` (a stage this runner skipped).
pub fn uncompared(stages: &HashMap<String, Tensor>, results: &[StageResult]) -> Vec<String> {
    let done: BTreeSet<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let mut v: Vec<String> = stages
        .keys()
        .filter(|k| !is_input(k) && !done.contains(k.as_str()))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Fixture access: outputs stay on the host, inputs go to the device in f32.
struct Fx<'a> {
    t: &'a HashMap<String, Tensor>,
    dev: &'a Device,
    out: Vec<StageResult>,
}

impl Fx<'_> {
    fn has(&self, name: &str) -> bool {
        self.t.contains_key(name)
    }

    fn any(&self, names: &[String]) -> bool {
        names.iter().any(|n| self.has(n))
    }

    fn any_prefix(&self, prefix: &str) -> bool {
        self.t.keys().any(|k| k.starts_with(prefix) && !is_input(k))
    }

    /// An input on the device; `stage` names what needs it.
    fn input(&self, name: &str, stage: &str) -> Result<Tensor> {
        let t = self.t.get(name).ok_or_else(|| {
            Error::Input(format!(
                "fixture has {stage} but not its input tensor '{name}'"
            ))
        })?;
        Ok(t.to_dtype(DType::F32)?.to_device(self.dev)?)
    }

    fn scalar(&self, name: &str, stage: &str) -> Result<f64> {
        let t = self.t.get(name).ok_or_else(|| {
            Error::Input(format!(
                "fixture has {stage} but not its input tensor '{name}'"
            ))
        })?;
        let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        match v.as_slice() {
            [x] if x.is_finite() => Ok(*x),
            _ => Err(Error::Input(format!(
                "fixture tensor '{name}' should hold one finite number, has {:?}",
                t.dims()
            ))),
        }
    }

    fn count(&self, name: &str, stage: &str) -> Result<usize> {
        let v = self.scalar(name, stage)?;
        if v < 0.0 || v.fract() != 0.0 {
            return Err(Error::Input(format!(
                "fixture tensor '{name}' should be a count, is {v}"
            )));
        }
        Ok(v as usize)
    }

    /// Compare `got` with the fixture tensor `name` if the fixture has it.
    fn check(&mut self, name: &str, got: &Tensor, feed: Feed) -> Result<()> {
        if let Some(want) = self.t.get(name) {
            let r = compare(name, got, want, feed)?;
            self.out.push(r);
        }
        Ok(())
    }

    /// Compare a token-major `[B, N, C]` result with a reference stored either token-major or as
    /// a `[B, C, h, w]` map.
    fn check_tokens(&mut self, name: &str, tokens: &Tensor, feed: Feed) -> Result<()> {
        let Some(want) = self.t.get(name) else {
            return Ok(());
        };
        let got = match want.dims() {
            [b, c, h, w] if tokens.dims() == [*b, h * w, *c] => {
                tokens.transpose(1, 2)?.reshape((*b, *c, *h, *w))?
            }
            _ => tokens.clone(),
        };
        let r = compare(name, &got, want, feed)?;
        self.out.push(r);
        Ok(())
    }
}

/// `[HW, B, C]` (sequence-first) -> `[B, C, e, e]`.
fn seq_to_map(x: &Tensor, e: usize, name: &str) -> Result<Tensor> {
    let (hw, b, c) = x.dims3()?;
    if hw != e * e {
        return Err(Error::Input(format!(
            "fixture tensor '{name}' has {hw} tokens, the variant's {e}x{e} grid has {}",
            e * e
        )));
    }
    Ok(x.permute((1, 2, 0))?.reshape((b, c, e, e))?)
}

/// `[B, C, h, w]` maps become token-major `[B, h*w, C]`; token-major tensors are kept.
fn to_tokens(x: &Tensor) -> Result<Tensor> {
    Ok(match x.rank() {
        4 => x.flatten_from(2)?.transpose(1, 2)?.contiguous()?,
        _ => x.clone(),
    })
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}
