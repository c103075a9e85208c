//! The image encoder's trunk: Hiera's patch embedding, position embedding and every block from
//! the reference's inputs, its stage outputs from the image; RepViT's intermediates and outputs
//! from the image.

use super::{numbered, Feed, Fx};
use crate::config::{HieraConfig, RepVitConfig};
use crate::error::Result;
use crate::nn::ModelOptions;
use crate::sam2::backbones::hieradet::Hiera;
use crate::sam2::backbones::repvit::RepVit;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

pub(super) fn hiera_stages(
    fx: &mut Fx,
    cfg: &HieraConfig,
    weights: &VarBuilder,
    model_opts: &ModelOptions,
    image_size: usize,
    levels: usize,
) -> Result<()> {
    let trunk = Hiera::new(cfg, model_opts, weights.pp("image_encoder").pp("trunk"))?
        .with_image_size(image_size)?;
    if fx.has("trunk.patch_embed") {
        let image = fx.input("image", "trunk.patch_embed")?;
        fx.check(
            "trunk.patch_embed",
            &trunk.patch_embed(&image)?,
            Feed::Reference,
        )?;
    }
    if let Some(want) = fx.t.get("trunk.pos_embed") {
        let (_, h, w, _) = want.dims4()?;
        fx.check(
            "trunk.pos_embed",
            &trunk.pos_embed_for((h, w))?,
            Feed::Reference,
        )?;
    }
    for (i, blk) in trunk.blocks().iter().enumerate() {
        let name = format!("trunk.blocks.{i}");
        if !fx.has(&name) {
            continue;
        }
        let x = if i == 0 {
            let pe = fx.input("trunk.patch_embed", &name)?;
            let pos = fx.input("trunk.pos_embed", &name)?;
            pe.broadcast_add(&pos)?
        } else {
            fx.input(&format!("trunk.blocks.{}", i - 1), &name)?
        };
        fx.check(&name, &blk.forward(&x)?, Feed::Reference)?;
    }
    if fx.any(&numbered("trunk.out.", levels)) {
        let image = fx.input("image", "trunk.out.*")?;
        let outs = trunk.forward_stages(&image)?;
        for (k, y) in outs.iter().enumerate() {
            fx.check(&format!("trunk.out.{k}"), y, Feed::Image)?;
        }
    }
    Ok(())
}

pub(super) fn repvit_stages(
    fx: &mut Fx,
    cfg: &RepVitConfig,
    weights: &VarBuilder,
    model_opts: &ModelOptions,
) -> Result<()> {
    let trunk = RepVit::new(cfg, model_opts, weights.pp("image_encoder").pp("trunk"))?;
    let image = fx.input("image", "trunk.*")?;
    let mut taps: Vec<(String, Tensor)> = Vec::new();
    let outs = trunk.forward_with_taps(&image, &mut |n, x| {
        taps.push((n.to_string(), x.clone()));
    })?;
    for (n, x) in &taps {
        fx.check(n, x, Feed::Image)?;
    }
    for (k, y) in outs.iter().enumerate() {
        fx.check(&format!("trunk.out.{k}"), y, Feed::Image)?;
    }
    Ok(())
}
