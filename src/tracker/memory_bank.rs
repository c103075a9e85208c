//! Per-object output store and the memory-bank selection of `SAM2Base` (§5.5 of the fact
//! sheet): which conditioning frames, which of the last `num_maskmem - 1` frames and which
//! object pointers a frame attends to, with their temporal slots.
//!
//! Retention: under [`Retention::Window`] (the default for tracking and benchmarking) a
//! non-conditioning output keeps its memory features only while it is within `num_maskmem - 1`
//! frames of the frame being tracked or of a conditioning frame, and its object pointer while it
//! is within `max_obj_ptrs_in_encoder - 1` frames; everything else is dropped. That is exactly
//! the set any later forward or backward sweep that starts at a conditioning frame can select,
//! so results equal the official predictor's, and the bank holds at most
//! `cond + (2·cond + 1)·(num_maskmem - 1)` memories and `(2·cond + 1)·max_obj_ptrs` pointers.
//! [`Retention::Full`] keeps every output, as the official predictor does.

use crate::config::TrackerConfig;
use crate::sam2::sam2_base::{Memory, MemoryRef, PointerRef};
use candle_core::Tensor;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Keep only what can still be selected (bounded memory).
    #[default]
    Window,
    /// Keep every frame's output (official behaviour; memory grows with the video).
    Full,
}

/// What the tracker stores for one object on one frame (the official "compact" output).
#[derive(Debug, Clone)]
pub struct FrameOutput {
    /// None until the memory encoder ran (prompted frames before preflight) or after eviction.
    pub memory: Option<Memory>,
    /// [1, 1, S/4, S/4] hole-filled low-res logits; None after eviction.
    pub pred_masks: Option<Tensor>,
    /// [1, C]
    pub obj_ptr: Tensor,
    /// [1, 1]
    pub object_score_logits: Tensor,
}

/// Outputs of one object: conditioning frames in insertion order, non-conditioning by frame.
#[derive(Debug, Default)]
pub struct OutputStore {
    pub cond: Vec<(usize, FrameOutput)>,
    pub non_cond: BTreeMap<usize, FrameOutput>,
}

impl OutputStore {
    pub fn cond_get(&self, f: usize) -> Option<&FrameOutput> {
        self.cond.iter().find(|(t, _)| *t == f).map(|(_, o)| o)
    }

    pub fn cond_insert(&mut self, f: usize, out: FrameOutput) {
        if let Some(slot) = self.cond.iter_mut().find(|(t, _)| *t == f) {
            slot.1 = out;
        } else {
            self.cond.push((f, out));
        }
    }

    /// `select_closest_cond_frames`: (selected, unselected) conditioning frame indices.
    fn select_cond(&self, frame_idx: usize, max_cond: i64) -> (Vec<usize>, Vec<usize>) {
        let all: Vec<usize> = self.cond.iter().map(|(t, _)| *t).collect();
        if max_cond < 0 || all.len() <= max_cond as usize {
            return (all, Vec::new());
        }
        let mut selected = Vec::new();
        if let Some(b) = all.iter().copied().filter(|&t| t < frame_idx).max() {
            selected.push(b);
        }
        if let Some(a) = all.iter().copied().filter(|&t| t >= frame_idx).min() {
            selected.push(a);
        }
        let remain = (max_cond as usize).saturating_sub(selected.len());
        let mut rest: Vec<usize> = all
            .iter()
            .copied()
            .filter(|t| !selected.contains(t))
            .collect();
        rest.sort_by_key(|&t| (t as i64 - frame_idx as i64).abs());
        selected.extend(rest.into_iter().take(remain));
        // keep dict (insertion) order among the selected ones
        let sel: Vec<usize> = all
            .iter()
            .copied()
            .filter(|t| selected.contains(t))
            .collect();
        let unsel: Vec<usize> = all
            .iter()
            .copied()
            .filter(|t| !selected.contains(t))
            .collect();
        (sel, unsel)
    }

    fn lookup_prev(&self, f: usize, unselected: &[usize]) -> Option<&FrameOutput> {
        self.non_cond.get(&f).or_else(|| {
            if unselected.contains(&f) {
                self.cond_get(f)
            } else {
                None
            }
        })
    }

    /// The memories and pointers frame `frame_idx` attends to (`_prepare_memory_conditioned_features`).
    pub fn select<'a>(
        &'a self,
        cfg: &TrackerConfig,
        frame_idx: usize,
        num_frames: usize,
        reverse: bool,
    ) -> (Vec<MemoryRef<'a>>, Vec<PointerRef<'a>>) {
        let (selected, unselected) = self.select_cond(frame_idx, cfg.max_cond_frames_in_attn);
        let mut mems = Vec::new();
        for &t in &selected {
            if let Some(m) = self.cond_get(t).and_then(|o| o.memory.as_ref()) {
                mems.push(MemoryRef {
                    memory: m,
                    t_pos: 0,
                });
            }
        }
        let stride = cfg.memory_temporal_stride_for_eval.max(1) as i64;
        let f = frame_idx as i64;
        let n = cfg.num_maskmem;
        for t_pos in 1..n {
            let t_rel = (n - t_pos) as i64;
            let prev = if t_rel == 1 {
                if reverse {
                    f + 1
                } else {
                    f - 1
                }
            } else if !reverse {
                ((f - 2).div_euclid(stride)) * stride - (t_rel - 2) * stride
            } else {
                -((-(f + 2)).div_euclid(stride)) * stride + (t_rel - 2) * stride
            };
            if prev < 0 {
                continue;
            }
            if let Some(m) = self
                .lookup_prev(prev as usize, &unselected)
                .and_then(|o| o.memory.as_ref())
            {
                mems.push(MemoryRef { memory: m, t_pos });
            }
        }
        let mut ptrs = Vec::new();
        if cfg.use_obj_ptrs_in_encoder {
            let max_ptrs = num_frames.min(cfg.max_obj_ptrs_in_encoder);
            let sign = if reverse { -1 } else { 1 };
            for &t in &selected {
                let in_past = if reverse {
                    t >= frame_idx
                } else {
                    t <= frame_idx
                };
                if cfg.only_obj_ptrs_in_the_past_for_eval && !in_past {
                    continue;
                }
                let d = f - t as i64;
                let pos = if cfg.use_signed_tpos_enc_to_obj_ptrs {
                    d * sign
                } else {
                    d.abs()
                };
                if let Some(o) = self.cond_get(t) {
                    ptrs.push(PointerRef {
                        obj_ptr: &o.obj_ptr,
                        pos,
                    });
                }
            }
            for t_diff in 1..max_ptrs as i64 {
                let t = if reverse { f + t_diff } else { f - t_diff };
                if t < 0 || t >= num_frames as i64 {
                    break;
                }
                if let Some(o) = self.lookup_prev(t as usize, &unselected) {
                    ptrs.push(PointerRef {
                        obj_ptr: &o.obj_ptr,
                        pos: t_diff,
                    });
                }
            }
        }
        (mems, ptrs)
    }

    /// Drop what no later sweep can select (see the module docs). `current` is the frame just
    /// tracked.
    pub fn evict(&mut self, cfg: &TrackerConfig, current: usize) {
        let mem_w = cfg.num_maskmem.saturating_sub(1);
        let ptr_w = cfg.max_obj_ptrs_in_encoder.saturating_sub(1).max(mem_w);
        let anchors: Vec<usize> = self
            .cond
            .iter()
            .map(|(t, _)| *t)
            .chain(std::iter::once(current))
            .collect();
        let dist = |f: usize| {
            anchors
                .iter()
                .map(|&a| a.abs_diff(f))
                .min()
                .unwrap_or(usize::MAX)
        };
        let mut drop = Vec::new();
        for (&f, out) in self.non_cond.iter_mut() {
            let d = dist(f);
            if d > ptr_w {
                drop.push(f);
            } else if d > mem_w {
                out.memory = None;
                out.pred_masks = None;
            }
        }
        for f in drop {
            self.non_cond.remove(&f);
        }
    }
}
