//! One frame of one or several objects: the official `_run_single_frame_inference`
//! (`track_step` and the compact output it stores), the mask-prompt path
//! (`_use_mask_as_output`), and the same work for several objects at once.
//!
//! Batching: on a tracked frame the objects of a session differ only in their memory banks.
//! The SAM heads and the memory encoder take the objects on the batch dimension as they are.
//! Memory attention can take them together only when their memory token sequences have the same
//! layout (same number of memory frames and of object pointers: an object that joined later has
//! fewer for a while), so objects are grouped by layout and each group is one call; no padding,
//! so each row computes exactly what the one-object call computes. The results equal the
//! per-object loop up to floating-point summation order (measured by the session tests).
//!
//! CUDA graph: a tracked frame of one memory layout (every object of a frame, once their banks
//! are full) is memory attention, SAM heads and memory encoder on fixed shapes. The token
//! sequence is assembled eagerly (it reads the tracker's host values: temporal slots, pointer
//! distances); the rest is a function of tensors that the session's [`GraphedFn`] replays when
//! the context graphs (`crate::cuda::graph`). Off the GPU, or eager, it is the same code.

use crate::config::{FencePoint, PostProcessing};
use crate::cuda::graph::GraphedFn;
use crate::error::Result;
use crate::exec::ExecCtx;
use crate::nn::ContiguousExt;
use crate::sam2::sam2_base::{
    FrameFeatures, Memory, MemoryRef, MemoryTokens, PointInputs, PointerRef, Sam2Base, SamOutputs,
};
use crate::tracker::memory_bank::{FrameOutput, OutputStore};
use crate::tracker::postprocess::fill_holes_in_mask_scores;
use candle_core::Tensor;

/// What every object computed on one frame shares: the model, the session's execution context
/// and post-processing, the frame's features and where the frame sits in the video.
pub struct FrameStep<'a> {
    pub model: &'a Sam2Base,
    pub ctx: &'a ExecCtx,
    pub feats: &'a FrameFeatures,
    pub frame_idx: usize,
    pub num_frames: usize,
    pub reverse: bool,
    pub post: PostProcessing,
    /// The session's graph of a tracked frame's step, replayed when `ctx` graphs.
    pub graph: &'a GraphedFn,
}

/// What the SAM heads and the memory encoder give a tracked frame of `n` objects (batch n).
struct HeadsOut {
    /// [n, 1, S/4, S/4] logits, before hole filling
    low_res_masks: Tensor,
    /// [n, C]
    obj_ptr: Tensor,
    /// [n, 1]
    object_score_logits: Tensor,
    memory: Option<Memory>,
}

impl HeadsOut {
    /// The parts of the heads' outputs a frame keeps, with the memory encoded from them.
    fn new(sam: SamOutputs, memory: Option<Memory>) -> Self {
        Self {
            low_res_masks: sam.low_res_masks,
            obj_ptr: sam.obj_ptr,
            object_score_logits: sam.object_score_logits,
            memory,
        }
    }
}

impl FrameStep<'_> {
    /// `_run_single_frame_inference` for one object on a frame without a mask prompt: memory
    /// conditioning (unless `is_init_cond`), the SAM heads with the clicks and the previous
    /// logits if any, the memory encoder when `run_mem_encoder`, hole filling.
    pub fn run_one(
        &self,
        store: &OutputStore,
        is_init_cond: bool,
        point_inputs: Option<&PointInputs>,
        prev_logits: Option<&Tensor>,
        run_mem_encoder: bool,
    ) -> Result<FrameOutput> {
        let (model, ctx) = (self.model, self.ctx);
        let dev = self.feats.vision_feat.device().clone();
        let tcfg = &model.cfg.tracker;
        let pix_feat = {
            let (mems, ptrs) = store.select(tcfg, self.frame_idx, self.num_frames, self.reverse);
            ctx.stage("memory_conditioning", &dev, || {
                model.memory_conditioned_features_ctx(
                    self.feats,
                    is_init_cond,
                    &mems,
                    &ptrs,
                    self.num_frames,
                    ctx,
                )
            })?
        };
        ctx.fence(&dev, FencePoint::MemoryConditioning)?;
        let num_pts = match point_inputs {
            Some(p) => p.num_points()?,
            None => 0,
        };
        let multimask = model.use_multimask(is_init_cond, num_pts);
        let high_res = model.high_res_pair(self.feats);
        let sam = ctx.stage("sam_heads", &dev, || {
            model.forward_sam_heads(
                &pix_feat,
                point_inputs,
                prev_logits,
                high_res,
                multimask,
                self.post,
            )
        })?;
        ctx.fence(&dev, FencePoint::Heads)?;
        let memory = if run_mem_encoder && tcfg.num_maskmem > 0 {
            Some(self.encode_memory(
                &self.feats.vision_feat,
                &sam.high_res_masks,
                &sam.object_score_logits,
                point_inputs.is_some(),
            )?)
        } else {
            None
        };
        let mut outs = self.outputs(HeadsOut::new(sam, memory), 1)?;
        Ok(outs.remove(0))
    }

    /// `_run_single_frame_inference` with a mask prompt (`_use_mask_as_output`): the mask is the
    /// output. mask_inputs: [1, 1, S, S] in {0, 1}. No memory yet (preflight encodes it).
    pub fn mask_as_output(&self, mask_inputs: &Tensor) -> Result<FrameOutput> {
        let dev = self.feats.vision_feat.device().clone();
        let sam = self.ctx.stage("sam_heads", &dev, || {
            self.model.use_mask_as_output(
                &self.feats.vision_feat,
                self.model.high_res_pair(self.feats),
                mask_inputs,
                self.post,
            )
        })?;
        let mut outs = self.outputs(HeadsOut::new(sam, None), 1)?;
        Ok(outs.remove(0))
    }

    /// A tracked (non-conditioning) frame of one object: [`Self::run_one`] without prompts,
    /// memory encoded.
    pub fn track_one(&self, store: &OutputStore) -> Result<FrameOutput> {
        let tcfg = &self.model.cfg.tracker;
        if tcfg.num_maskmem == 0 {
            return self.run_one(store, false, None, None, true);
        }
        let (mems, ptrs) = store.select(tcfg, self.frame_idx, self.num_frames, self.reverse);
        let mut outs = self.track_group(&[(mems.as_slice(), ptrs.as_slice())])?;
        Ok(outs.remove(0))
    }

    /// [`Self::track_one`] for several objects at once, objects on the batch dimension (see the
    /// module docs); output i belongs to `stores[i]`.
    pub fn track_batched(&self, stores: &[&OutputStore]) -> Result<Vec<FrameOutput>> {
        let n = stores.len();
        if n <= 1 {
            return stores.iter().map(|s| self.track_one(s)).collect();
        }
        let (model, ctx) = (self.model, self.ctx);
        let dev = self.feats.vision_feat.device().clone();
        let tcfg = &model.cfg.tracker;
        let selections: Vec<_> = stores
            .iter()
            .map(|s| s.select(tcfg, self.frame_idx, self.num_frames, self.reverse))
            .collect();
        // objects grouped by memory layout, groups in order of their first object
        let mut groups: Vec<((usize, usize), Vec<usize>)> = Vec::new();
        for (i, (mems, ptrs)) in selections.iter().enumerate() {
            let key = (mems.len(), ptrs.len());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        if groups.len() == 1 && tcfg.num_maskmem > 0 {
            let per: Vec<_> = selections
                .iter()
                .map(|(m, p)| (m.as_slice(), p.as_slice()))
                .collect();
            return self.track_group(&per);
        }
        // Several layouts (an object joined later): one memory attention per layout, then the
        // heads and the memory encoder for all objects at once, eagerly.
        let mut rows: Vec<Option<Tensor>> = vec![None; n];
        let mut whole = None;
        for (_, members) in &groups {
            let per: Vec<_> = members
                .iter()
                .map(|&i| (selections[i].0.as_slice(), selections[i].1.as_slice()))
                .collect();
            let out = ctx.stage("memory_conditioning", &dev, || {
                model.memory_conditioned_features_batch_ctx(self.feats, &per, self.num_frames, ctx)
            })?;
            if groups.len() == 1 {
                whole = Some(out);
            } else {
                for (j, &i) in members.iter().enumerate() {
                    rows[i] = Some(out.narrow(0, j, 1)?);
                }
            }
        }
        let pix_feat = match whole {
            Some(t) => t,
            None => {
                let rows = rows.into_iter().flatten().collect::<Vec<_>>();
                Tensor::cat(&rows, 0)?
            }
        };
        ctx.fence(&dev, FencePoint::MemoryConditioning)?;
        let high_res = model.high_res_pair(self.feats);
        let heads = self.heads_and_memory(&self.feats.vision_feat, &pix_feat, high_res)?;
        self.outputs(heads, n)
    }

    /// A tracked frame of objects whose memories have one layout (`per[i]`: object i's memory
    /// frames and pointers): memory tokens eagerly, then memory attention, SAM heads and memory
    /// encoder through the session's graph (see the module docs). Output i is object i's.
    fn track_group(&self, per: &[(&[MemoryRef], &[PointerRef])]) -> Result<Vec<FrameOutput>> {
        let (model, ctx) = (self.model, self.ctx);
        let n = per.len();
        let feats = self.feats;
        let dev = feats.vision_feat.device().clone();
        let tokens = ctx.stage("memory_tokens", &dev, || {
            model.memory_tokens_batch(per, self.num_frames, feats.vision_feat.dim(0)?, &dev)
        })?;
        let high_res = model.high_res_pair(feats);
        let mut inputs = vec![
            feats.vision_feat.clone(),
            feats.vision_pos.clone(),
            tokens.memory.clone(),
            tokens.pos.clone(),
        ];
        if let Some((a, b)) = high_res {
            inputs.push(a.clone());
            inputs.push(b.clone());
        }
        // Every host value the step reads besides the input shapes.
        let tag = [
            tokens.num_obj_ptr_tokens,
            tokens.num_spatial_mem,
            usize::from(self.post == PostProcessing::On),
        ];
        let step = |xs: &[Tensor]| -> candle_core::Result<Vec<Tensor>> {
            let toks = MemoryTokens {
                memory: xs[2].clone(),
                pos: xs[3].clone(),
                ..tokens.clone()
            };
            let pix_feat = ctx.stage("memory_conditioning", &dev, || {
                model.attend_tokens(&xs[0], &xs[1], &toks, ctx)
            })?;
            ctx.fence(&dev, FencePoint::MemoryConditioning)?;
            let high_res = (xs.len() == 6).then(|| (&xs[4], &xs[5]));
            let h = self
                .heads_and_memory(&xs[0], &pix_feat, high_res)
                .map_err(candle_core::Error::wrap)?;
            // track_group runs only for variants with a memory bank, so a memory was encoded
            let m = h.memory.ok_or_else(|| {
                candle_core::Error::Msg("tracked frame: no memory was encoded".into())
            })?;
            Ok(vec![
                h.low_res_masks,
                h.obj_ptr,
                h.object_score_logits,
                m.features,
                m.pos,
            ])
        };
        let mut out = self
            .graph
            .run_with(&inputs, &tag, ctx.graph_step(), &step)?
            .into_iter();
        let mut next = || {
            out.next()
                .ok_or_else(|| candle_core::Error::Msg("graphed step: missing output".into()))
        };
        let (low_res_masks, obj_ptr, object_score_logits) = (next()?, next()?, next()?);
        let memory = Memory {
            features: next()?,
            pos: next()?,
        };
        self.outputs(
            HeadsOut {
                low_res_masks,
                obj_ptr,
                object_score_logits,
                memory: Some(memory),
            },
            n,
        )
    }

    /// The SAM heads without prompts and the memory encoder of a tracked frame, objects on the
    /// batch dimension. vision_feat: [1, C, e, e] (the frame's, shared); pix_feat: [n, C, e, e]
    /// memory-conditioned.
    fn heads_and_memory(
        &self,
        vision_feat: &Tensor,
        pix_feat: &Tensor,
        high_res: Option<(&Tensor, &Tensor)>,
    ) -> Result<HeadsOut> {
        let (model, ctx) = (self.model, self.ctx);
        let dev = pix_feat.device().clone();
        let n = pix_feat.dim(0)?;
        let multimask = model.use_multimask(false, 0);
        let sam = ctx.stage("sam_heads", &dev, || {
            model.forward_sam_heads(pix_feat, None, None, high_res, multimask, self.post)
        })?;
        ctx.fence(&dev, FencePoint::Heads)?;
        let memory = if model.cfg.tracker.num_maskmem > 0 {
            let (_, c, h, w) = vision_feat.dims4()?;
            let vision = if n == 1 {
                vision_feat.clone()
            } else {
                vision_feat.broadcast_as((n, c, h, w))?.contiguous_fast()?
            };
            Some(self.encode_memory(
                &vision,
                &sam.high_res_masks,
                &sam.object_score_logits,
                false,
            )?)
        } else {
            None
        };
        Ok(HeadsOut::new(sam, memory))
    }

    /// `_encode_new_memory` of `n` objects (batch n), rounded for storage as the official
    /// predictor stores it. vision: [n, C, e, e]; high_res_masks: [n, 1, S, S]; scores: [n, 1].
    pub fn encode_memory(
        &self,
        vision: &Tensor,
        high_res_masks: &Tensor,
        object_score_logits: &Tensor,
        is_mask_from_pts: bool,
    ) -> Result<Memory> {
        let dev = vision.device().clone();
        let model = self.model;
        Ok(self.ctx.stage("memory_encoder", &dev, || {
            model.store_memory(model.encode_new_memory(
                vision,
                high_res_masks,
                object_score_logits,
                is_mask_from_pts,
                self.post,
            )?)
        })?)
    }

    /// The compact per-object outputs of a batch of `n` objects: hole-filled low-res logits,
    /// pointer, score and memory, each object's own copy (a slice of a batch would keep the whole
    /// batch alive as long as any object keeps its slice).
    fn outputs(&self, heads: HeadsOut, n: usize) -> Result<Vec<FrameOutput>> {
        let dev = heads.low_res_masks.device().clone();
        let area = self.post.fill_hole_area(&self.model.cfg.tracker);
        let pred_masks = if area > 0 {
            self.ctx.stage("fill_holes", &dev, || {
                fill_holes_in_mask_scores(&heads.low_res_masks, area)
            })?
        } else {
            heads.low_res_masks
        };
        (0..n)
            .map(|i| {
                let memory = match &heads.memory {
                    Some(m) => Some(Memory {
                        features: row(&m.features, i, n)?,
                        pos: row(&m.pos, i, n)?,
                    }),
                    None => None,
                };
                Ok(FrameOutput {
                    memory,
                    pred_masks: Some(row(&pred_masks, i, n)?),
                    obj_ptr: heads.obj_ptr.narrow(0, i, 1)?,
                    object_score_logits: heads.object_score_logits.narrow(0, i, 1)?,
                })
            })
            .collect()
    }
}

/// Row `i` of a batch of `n` as a tensor of its own (the tensor itself when `n` is 1).
fn row(t: &Tensor, i: usize, n: usize) -> Result<Tensor> {
    if n == 1 {
        Ok(t.clone())
    } else {
        Ok(t.narrow(0, i, 1)?.copy()?)
    }
}
