//! The prompt encoder's cases, the mask decoder (`predict_masks`, multimask and single-mask
//! outputs with the dynamic stability score) and `SAM2Base._forward_sam_heads`.

use super::{Feed, Fx};
use crate::config::{ModelConfig, PostProcessing};
use crate::error::Result;
use crate::sam2::mask_decoder::stability_scores;
use crate::sam2::sam2_base::{PointInputs, Sam2Base};
use candle_core::Tensor;
use std::collections::BTreeSet;

/// The reference prompt cases: `prompt.{case}.sparse|dense` other than the mask prompt.
fn prompt_cases(fx: &Fx) -> Vec<String> {
    let mut cases: BTreeSet<String> = BTreeSet::new();
    for k in fx.t.keys() {
        if let Some(rest) = k.strip_prefix("prompt.") {
            if let Some((case, part)) = rest.rsplit_once('.') {
                if (part == "sparse" || part == "dense") && case != "mask" {
                    cases.insert(case.to_string());
                }
            }
        }
    }
    cases.into_iter().collect()
}

pub(super) fn head_stages(fx: &mut Fx, model: &Sam2Base, cfg: &ModelConfig) -> Result<()> {
    let pe = &model.sam_prompt_encoder;
    for case in prompt_cases(fx) {
        let stage = format!("prompt.{case}.*");
        let coords = fx.input(&format!("prompt.{case}.coords"), &stage)?;
        let labels = fx.input(&format!("prompt.{case}.labels"), &stage)?;
        let (sparse, dense) = pe.forward(Some((&coords, &labels)), None)?;
        fx.check(&format!("prompt.{case}.sparse"), &sparse, Feed::Reference)?;
        fx.check(&format!("prompt.{case}.dense"), &dense, Feed::Reference)?;
    }
    if fx.has("prompt.mask.dense") {
        let m = fx.input("prompt.mask.input", "prompt.mask.dense")?;
        fx.check("prompt.mask.dense", &pe.embed_masks(&m)?, Feed::Reference)?;
    }
    if fx.has("prompt.dense_pe") {
        fx.check("prompt.dense_pe", &pe.get_dense_pe(), Feed::Reference)?;
    }

    let use_hr = cfg.tracker.use_high_res_features_in_sam;
    let high_res = |fx: &Fx, stage: &str| -> Result<Option<(Tensor, Tensor)>> {
        if !use_hr {
            return Ok(None);
        }
        Ok(Some((
            fx.input("decoder.high_res.0", stage)?,
            fx.input("decoder.high_res.1", stage)?,
        )))
    };
    let md = &model.sam_mask_decoder;
    // (output group, prompt case, multimask)
    for (group, case, multi) in [
        ("predict", "points", None),
        ("multi", "points", Some(true)),
        ("single", "box", Some(false)),
    ] {
        let parts: &[&str] = match multi {
            None => &["masks", "iou", "mask_tokens_out", "object_score"],
            Some(_) => &["masks", "iou", "sam_tokens_out", "object_score"],
        };
        let names: Vec<String> = parts
            .iter()
            .map(|p| format!("decoder.{group}.{p}"))
            .collect();
        let want_stability = group == "single" && fx.has("decoder.single.stability");
        if !fx.any(&names) && !want_stability {
            continue;
        }
        let stage = format!("decoder.{group}.*");
        let img = fx.input("decoder.image_embeddings", &stage)?;
        let dense_pe = fx.input("prompt.dense_pe", &stage)?;
        let sp = fx.input(&format!("prompt.{case}.sparse"), &stage)?;
        let de = fx.input(&format!("prompt.{case}.dense"), &stage)?;
        let hr = high_res(fx, &stage)?;
        let hr_ref = hr.as_ref().map(|(a, b)| (a, b));
        match multi {
            None => {
                let p = md.predict_masks(&img, &dense_pe, &sp, &de, false, hr_ref)?;
                for (n, t) in names.iter().zip([
                    &p.masks,
                    &p.iou_pred,
                    &p.mask_tokens_out,
                    &p.object_score_logits,
                ]) {
                    fx.check(n, t, Feed::Reference)?;
                }
            }
            Some(mm) => {
                let o = md.forward(&img, &dense_pe, &sp, &de, mm, false, hr_ref)?;
                for (n, t) in names.iter().zip([
                    &o.masks,
                    &o.iou_pred,
                    &o.sam_tokens_out,
                    &o.object_score_logits,
                ]) {
                    fx.check(n, t, Feed::Reference)?;
                }
                if want_stability {
                    let p = md.predict_masks(&img, &dense_pe, &sp, &de, false, hr_ref)?;
                    let s = stability_scores(
                        &p.masks.narrow(1, 0, 1)?,
                        cfg.mask_decoder.dynamic_multimask_stability_delta,
                    )?
                    .flatten_all()?;
                    fx.check("decoder.single.stability", &s, Feed::Reference)?;
                }
            }
        }
    }

    // SAM2Base._forward_sam_heads on each reference case present.
    let mut head_cases: BTreeSet<String> = BTreeSet::new();
    for k in fx.t.keys() {
        if let Some((case, _)) = k.strip_prefix("heads.").and_then(|r| r.split_once('.')) {
            head_cases.insert(case.to_string());
        }
    }
    for case in head_cases {
        let stage = format!("heads.{case}.*");
        let emb = fx.input("decoder.image_embeddings", &stage)?;
        let pts = PointInputs {
            coords: fx.input(&format!("prompt.{case}.coords"), &stage)?,
            labels: fx.input(&format!("prompt.{case}.labels"), &stage)?,
        };
        let hr = high_res(fx, &stage)?;
        let hr_ref = hr.as_ref().map(|(a, b)| (a, b));
        // what the official predictor decides on an initial conditioning frame
        let multimask = model.use_multimask(true, pts.num_points()?);
        let o = model.forward_sam_heads(
            &emb,
            Some(&pts),
            None,
            hr_ref,
            multimask,
            PostProcessing::On,
        )?;
        for (part, t) in [
            ("low_res_multimasks", &o.low_res_multimasks),
            ("high_res_multimasks", &o.high_res_multimasks),
            ("ious", &o.ious),
            ("low_res_masks", &o.low_res_masks),
            ("high_res_masks", &o.high_res_masks),
            ("obj_ptr", &o.obj_ptr),
            ("object_score_logits", &o.object_score_logits),
        ] {
            fx.check(&format!("heads.{case}.{part}"), t, Feed::Reference)?;
        }
    }
    Ok(())
}
