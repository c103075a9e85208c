//! SAM2Base's glue between the networks: `_encode_new_memory`, the object pointers' temporal
//! encoding and `_prepare_memory_conditioned_features` over a memory bank built from the
//! reference's memories.

use super::{seq_to_map, to_tokens, Feed, Fx};
use crate::config::{ModelConfig, PostProcessing};
use crate::error::{Error, Result};
use crate::sam2::sam2_base::{FrameFeatures, Memory, Sam2Base};
use crate::tracker::memory_bank::{FrameOutput, OutputStore};
use candle_core::{DType, Tensor};
use std::collections::BTreeSet;

pub(super) fn glue_stages(fx: &mut Fx, model: &Sam2Base, cfg: &ModelConfig) -> Result<()> {
    let e = cfg.embedding_size();
    let mut enc_cases: BTreeSet<String> = BTreeSet::new();
    for k in fx.t.keys() {
        if let Some((case, part)) = k
            .strip_prefix("encode_new_memory.")
            .and_then(|r| r.split_once('.'))
        {
            if part == "features" || part == "pos" {
                enc_cases.insert(case.to_string());
            }
        }
    }
    if !enc_cases.is_empty() {
        let name = "encode_new_memory.input_vision_feat";
        let pix = seq_to_map(&fx.input(name, "encode_new_memory.*")?, e, name)?;
        for case in enc_cases {
            let pre = format!("encode_new_memory.{case}");
            let stage = format!("{pre}.*");
            let masks = fx.input(&format!("{pre}.pred_masks_high_res"), &stage)?;
            let score = fx.input(&format!("{pre}.object_score_logits"), &stage)?;
            let from_pts = fx.scalar(&format!("{pre}.is_mask_from_pts"), &stage)? > 0.5;
            // the stage fixture is the predictor's default build: post-processing on
            let mem =
                model.encode_new_memory(&pix, &masks, &score, from_pts, PostProcessing::On)?;
            fx.check_tokens(&format!("{pre}.features"), &mem.features, Feed::Reference)?;
            fx.check_tokens(&format!("{pre}.pos"), &mem.pos, Feed::Reference)?;
        }
    }

    if fx.has("obj_ptr_tpos.output") {
        let stage = "obj_ptr_tpos.output";
        let pos: Vec<i64> = fx
            .t
            .get("obj_ptr_tpos.input")
            .ok_or_else(|| Error::Input(format!("fixture has {stage} but not obj_ptr_tpos.input")))?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?
            .into_iter()
            .map(|v| v.round() as i64)
            .collect();
        // the normalising length is min(num_frames, max_obj_ptrs): passing it as num_frames
        // gives the same value, since it never exceeds max_obj_ptrs
        let max_ptr = fx.count("obj_ptr_tpos.max_ptr", stage)?;
        let got = model.pointer_pos_enc(&pos, max_ptr, fx.dev)?;
        fx.check(stage, &got, Feed::Reference)?;
    }

    if fx.has("prepare_memory.out") {
        let stage = "prepare_memory.out";
        let pos_enc = to_tokens(&fx.input("prepare_memory.maskmem_pos_enc", stage)?)?;
        let n_mem = (0..)
            .take_while(|i| fx.has(&format!("prepare_memory.maskmem_features.{i}")))
            .count();
        if n_mem == 0 {
            return Err(Error::Input(format!(
                "fixture has {stage} but no prepare_memory.maskmem_features.0"
            )));
        }
        let mut store = OutputStore::default();
        for i in 0..n_mem {
            let features =
                to_tokens(&fx.input(&format!("prepare_memory.maskmem_features.{i}"), stage)?)?;
            let memory = model.store_memory(Memory {
                features,
                pos: pos_enc.clone(),
            })?;
            let out = FrameOutput {
                memory: Some(memory),
                pred_masks: None,
                obj_ptr: fx.input(&format!("prepare_memory.obj_ptr.{i}"), stage)?,
                object_score_logits: Tensor::ones((1, 1), DType::F32, fx.dev)?,
            };
            // the contract: frame 0 is the conditioning frame, the rest are tracked frames
            if i == 0 {
                store.cond_insert(0, out);
            } else {
                store.non_cond.insert(i, out);
            }
        }
        let frame = fx.count("prepare_memory.frame_idx", stage)?;
        let nf = fx.count("prepare_memory.num_frames", stage)?;
        if frame < n_mem || frame >= nf {
            return Err(Error::Input(format!(
                "prepare_memory.frame_idx {frame} must follow the {n_mem} stored frames and lie within {nf} frames"
            )));
        }
        let (mems, ptrs) = store.select(&cfg.tracker, frame, nf, false);
        let feats = FrameFeatures {
            vision_feat: seq_to_map(&fx.input("memattn.curr", stage)?, e, "memattn.curr")?,
            vision_pos: seq_to_map(&fx.input("memattn.curr_pos", stage)?, e, "memattn.curr_pos")?,
            high_res: vec![],
        };
        let got = model.memory_conditioned_features(&feats, false, &mems, &ptrs, nf)?;
        fx.check(stage, &got, Feed::Reference)?;
    }
    Ok(())
}
