//! The FPN neck from the reference's trunk outputs, the whole image encoder from the image, and
//! `SAM2Base.forward_image`'s high-resolution convolutions.

use super::{numbered, Feed, Fx};
use crate::error::Result;
use crate::sam2::sam2_base::Sam2Base;

pub(super) fn encoder_stages(fx: &mut Fx, model: &Sam2Base, levels: usize) -> Result<()> {
    let mut neck_names = numbered("neck.fpn.", levels);
    neck_names.extend(numbered("neck.pos.", levels));
    if fx.any(&neck_names) {
        let xs = (0..levels)
            .map(|k| fx.input(&format!("trunk.out.{k}"), "neck.*"))
            .collect::<Result<Vec<_>>>()?;
        let (fpn, pos) = model.image_encoder.neck().forward(&xs)?;
        for (k, (f, p)) in fpn.iter().zip(&pos).enumerate() {
            fx.check(&format!("neck.fpn.{k}"), f, Feed::Reference)?;
            fx.check(&format!("neck.pos.{k}"), p, Feed::Reference)?;
        }
    }
    let mut enc_names = numbered("encoder.backbone_fpn.", levels);
    enc_names.extend(numbered("encoder.vision_pos_enc.", levels));
    let top = numbered("forward_image.backbone_fpn.", levels);
    let mut ours_last_level = None;
    let needs_top = top.iter().skip(2).any(|n| fx.has(n));
    if fx.any(&enc_names) || needs_top {
        let image = fx.input("image", "encoder.*")?;
        let out = model.image_encoder.forward(&image)?;
        for (k, (f, p)) in out.backbone_fpn.iter().zip(&out.vision_pos_enc).enumerate() {
            fx.check(&format!("encoder.backbone_fpn.{k}"), f, Feed::Image)?;
            fx.check(&format!("encoder.vision_pos_enc.{k}"), p, Feed::Image)?;
        }
        ours_last_level = Some((out.backbone_fpn.len(), out.vision_features));
    }
    // SAM2Base.forward_image: conv_s0 / conv_s1 on the reference levels; the last level passes
    // through unchanged (compared from our end-to-end encoder run).
    let md = &model.sam_mask_decoder;
    if fx.has("forward_image.backbone_fpn.0") {
        let x = fx.input("encoder.backbone_fpn.0", "forward_image.backbone_fpn.0")?;
        fx.check(
            "forward_image.backbone_fpn.0",
            &md.conv_s0(&x)?,
            Feed::Reference,
        )?;
    }
    if fx.has("forward_image.backbone_fpn.1") {
        let x = fx.input("encoder.backbone_fpn.1", "forward_image.backbone_fpn.1")?;
        fx.check(
            "forward_image.backbone_fpn.1",
            &md.conv_s1(&x)?,
            Feed::Reference,
        )?;
    }
    if let Some((n, last)) = ours_last_level {
        fx.check(
            &format!("forward_image.backbone_fpn.{}", n - 1),
            &last,
            Feed::Image,
        )?;
    }
    Ok(())
}
