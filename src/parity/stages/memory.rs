//! The memory encoder's stages, EdgeTAM's spatial perceiver and every memory-attention layer.

use super::{numbered, Feed, Fx};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::sam2::sam2_base::Sam2Base;
use candle_core::Tensor;

pub(super) fn memory_stages(fx: &mut Fx, model: &Sam2Base, cfg: &ModelConfig) -> Result<()> {
    if fx.any_prefix("memenc.") {
        let pix = fx.input("memenc.pix_feat", "memenc.*")?;
        let mask = fx.input("memenc.mask", "memenc.*")?;
        let s = model.memory_encoder.forward_stages(&pix, &mask, true)?;
        fx.check(
            "memenc.mask_downsampler",
            &s.mask_downsampled,
            Feed::Reference,
        )?;
        fx.check("memenc.fuser", &s.fused, Feed::Reference)?;
        fx.check("memenc.features", &s.features, Feed::Reference)?;
        fx.check("memenc.pos", &s.pos, Feed::Reference)?;
    }
    if fx.any_prefix("perceiver.") {
        let p = model.spatial_perceiver.as_ref().ok_or_else(|| {
            Error::Input(format!(
                "the fixture has perceiver.* tensors but variant {} has no spatial perceiver",
                cfg.name
            ))
        })?;
        let x = fx.input("perceiver.in.features", "perceiver.*")?;
        let pos = fx.input("perceiver.in.pos", "perceiver.*")?;
        let mut taps: Vec<(String, Tensor)> = Vec::new();
        let (lat, lpos) = p.forward_with_taps(&x, &pos, &mut |n, t| {
            taps.push((n.to_string(), t.clone()));
        })?;
        for (n, t) in &taps {
            fx.check(n, t, Feed::Reference)?;
        }
        fx.check("perceiver.out.features", &lat, Feed::Reference)?;
        fx.check("perceiver.out.pos", &lpos, Feed::Reference)?;
    }
    let mut names = numbered("memattn.layers.", cfg.memory_attention.num_layers);
    names.push("memattn.out".into());
    if fx.any(&names) {
        let stage = "memattn.*";
        let curr = fx.input("memattn.curr", stage)?;
        let curr_pos = fx.input("memattn.curr_pos", stage)?;
        let memory = fx.input("memattn.memory", stage)?;
        let memory_pos = fx.input("memattn.memory_pos", stage)?;
        let n_ptr = fx.count("memattn.num_obj_ptr_tokens", stage)?;
        let frames = if fx.has("memattn.num_spatial_mem") {
            Some(fx.count("memattn.num_spatial_mem", stage)?)
        } else {
            None
        };
        let (out, layers) = model.memory_attention.forward_layers(
            &curr,
            &memory,
            &curr_pos,
            &memory_pos,
            n_ptr,
            frames,
        )?;
        for (i, l) in layers.iter().enumerate() {
            fx.check(&format!("memattn.layers.{i}"), l, Feed::Reference)?;
        }
        fx.check("memattn.out", &out, Feed::Reference)?;
    }
    Ok(())
}
