//! A tracking session on one video: the Rust counterpart of the official `SAM2VideoPredictor`
//! (per-object, `sam2/sam2_video_predictor.py`), for one or several objects, each tracked as
//! its own object.
//!
//! Frames are decoded lazily (a folder of JPEGs: at most three resized frames in host memory at
//! once, see [`PrefetchingFrames`]); the backbone features of only the most recently
//! used frame are cached (as the official predictor does). What the session keeps per object is
//! bounded by [`Retention`] (see [`crate::tracker::memory_bank`]).

use crate::config::{FencePoint, FenceSet};
use crate::error::{Error, Result};
use crate::exec::ExecCtx;
use crate::nn::interpolate;
use crate::profile::Profiler;
use crate::sam2::sam2_base::{FrameFeatures, PointInputs, Sam2Base, NO_OBJ_SCORE};
use crate::tracker::frames::{FrameSource, PrefetchingFrames, VideoFrames};
use crate::tracker::memory_bank::{FrameOutput, OutputStore, Retention};
use crate::tracker::postprocess::fill_holes_in_mask_scores;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// A prompt in video pixel coordinates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    /// (x, y, label): label 1 positive, 0 negative
    pub points: Vec<(f32, f32, i32)>,
    /// [x0, y0, x1, y1]
    pub bbox: Option<[f32; 4]>,
}

/// How a session runs. The execution policy among them (fences, trunk graph, profiler) becomes
/// the session's own [`ExecCtx`] when it opens: it applies to this session only.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub retention: Retention,
    /// Where each frame waits for the device so the memory pool can reuse what the frame freed
    /// (CUDA; [`ExecCtx::fence`]). None: [`FenceSet::auto`] for the model's dtype.
    pub memory_fences: Option<FenceSet>,
    /// Replay the image encoder's trunk as a CUDA graph (`crate::cuda::graph`; kept eager while
    /// profiling).
    pub cuda_graph: bool,
    /// The stage profiler this session's frames report to (`VOSBENCH_PROFILE`, owned by the
    /// CLI); None: nothing is timed.
    pub profiler: Option<Arc<Profiler>>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            retention: Retention::Window,
            memory_fences: None,
            cuda_graph: false,
            profiler: None,
        }
    }
}

impl SessionOptions {
    /// These options with frames reporting to `profiler`.
    pub fn with_profiler(mut self, profiler: Option<Arc<Profiler>>) -> Self {
        self.profiler = profiler;
        self
    }
}

/// What a tracked frame gives back.
#[derive(Debug, Clone)]
pub struct FrameResult {
    pub frame_idx: usize,
    pub obj_ids: Vec<u32>,
    /// [N_obj, 1, H, W] logits at the video's resolution (threshold at > 0)
    pub video_res_masks: Tensor,
    /// [N_obj, 1, S/4, S/4] hole-filled low-res logits
    pub low_res_masks: Tensor,
    /// per object; None for an object with no output on this frame
    pub object_score_logits: Vec<Option<f32>>,
    /// [1, C] per object
    pub obj_ptrs: Vec<Option<Tensor>>,
}

#[derive(Debug, Default)]
struct ObjectState {
    obj_id: u32,
    point_inputs: HashMap<usize, PointInputs>,
    out: OutputStore,
    temp_cond: Vec<(usize, FrameOutput)>,
    temp_non_cond: Vec<(usize, FrameOutput)>,
    /// frame -> tracked in reverse
    tracked: HashMap<usize, bool>,
}

pub struct Session<'m> {
    model: &'m Sam2Base,
    frames: Box<dyn FrameSource + 'm>,
    device: Device,
    opts: SessionOptions,
    /// This session's execution policy, passed to every model forward it runs.
    ctx: ExecCtx,
    objects: Vec<ObjectState>,
    cache: Option<(usize, FrameFeatures)>,
}

fn temp_get(v: &[(usize, FrameOutput)], f: usize) -> Option<&FrameOutput> {
    v.iter().find(|(t, _)| *t == f).map(|(_, o)| o)
}

fn temp_put(v: &mut Vec<(usize, FrameOutput)>, f: usize, out: FrameOutput) {
    if let Some(slot) = v.iter_mut().find(|(t, _)| *t == f) {
        slot.1 = out;
    } else {
        v.push((f, out));
    }
}

impl<'m> Session<'m> {
    /// Open a session on a folder of JPEG frames (`init_state`). Frames are decoded lazily, the
    /// next two on background threads while the current one runs ([`PrefetchingFrames`]).
    pub fn open(
        model: &'m Sam2Base,
        frames_dir: &Path,
        device: &Device,
        opts: SessionOptions,
    ) -> Result<Self> {
        let frames = PrefetchingFrames::new(VideoFrames::open(frames_dir)?);
        Ok(Self::with_frames(model, Box::new(frames), device, opts))
    }

    /// Open a session on any frame source.
    pub fn with_frames(
        model: &'m Sam2Base,
        frames: Box<dyn FrameSource + 'm>,
        device: &Device,
        opts: SessionOptions,
    ) -> Self {
        let ctx = ExecCtx::new(
            opts.memory_fences
                .unwrap_or_else(|| FenceSet::auto(model.dtype())),
            opts.cuda_graph,
            opts.profiler.clone(),
        );
        Self {
            model,
            frames,
            device: device.clone(),
            opts,
            ctx,
            objects: Vec::new(),
            cache: None,
        }
    }

    /// The execution policy this session passes down its forwards.
    pub fn exec_ctx(&self) -> &ExecCtx {
        &self.ctx
    }

    pub fn num_frames(&self) -> usize {
        self.frames.len()
    }

    /// (height, width) of the video.
    pub fn video_size(&self) -> (usize, usize) {
        self.frames.size()
    }

    /// The file frame `idx` was read from, if it came from a file.
    pub fn frame_path(&self, idx: usize) -> Option<&Path> {
        self.frames.path(idx)
    }

    pub fn obj_ids(&self) -> Vec<u32> {
        self.objects.iter().map(|o| o.obj_id).collect()
    }

    fn obj_idx(&mut self, obj_id: u32) -> usize {
        if let Some(i) = self.objects.iter().position(|o| o.obj_id == obj_id) {
            return i;
        }
        self.objects.push(ObjectState {
            obj_id,
            ..Default::default()
        });
        self.objects.len() - 1
    }

    fn features(&mut self, frame_idx: usize) -> Result<FrameFeatures> {
        if let Some((f, feats)) = &self.cache {
            if *f == frame_idx {
                return Ok(feats.clone());
            }
        }
        let dev = self.device.clone();
        let img = self.ctx.stage("frame.load", &dev, || {
            self.frames
                .load_tensor(frame_idx, self.model.image_size(), &self.device)
        })?;
        let feats = self.ctx.stage("image_encoder", &dev, || {
            self.model.forward_image_ctx(&img, &self.ctx)
        })?;
        self.cache = Some((frame_idx, feats.clone()));
        Ok(feats)
    }

    /// `add_new_points_or_box`: prompt object `obj_id` on `frame_idx`. Returns the masks of all
    /// objects on that frame.
    pub fn add_prompt(
        &mut self,
        frame_idx: usize,
        obj_id: u32,
        prompt: &Prompt,
    ) -> Result<FrameResult> {
        let n = self.num_frames();
        if frame_idx >= n {
            return Err(Error::Input(format!(
                "prompt frame {frame_idx} is outside the video ({n} frames)"
            )));
        }
        if prompt.points.is_empty() && prompt.bbox.is_none() {
            return Err(Error::Input(
                "a prompt needs at least one point or a box".into(),
            ));
        }
        let (h, w) = self.video_size();
        let inside = |x: f32, y: f32| x >= 0.0 && y >= 0.0 && x <= w as f32 && y <= h as f32;
        for &(x, y, l) in &prompt.points {
            if !inside(x, y) {
                return Err(Error::Input(format!(
                    "point ({x}, {y}) is outside the {w}x{h} frame"
                )));
            }
            if l != 0 && l != 1 {
                return Err(Error::Input(format!(
                    "point label {l} must be 0 (negative) or 1 (positive)"
                )));
            }
        }
        if let Some([x0, y0, x1, y1]) = prompt.bbox {
            if !inside(x0, y0) || !inside(x1, y1) || x1 < x0 || y1 < y0 {
                return Err(Error::Input(format!(
                    "box [{x0}, {y0}, {x1}, {y1}] is not a box inside the {w}x{h} frame"
                )));
            }
        }
        let s = self.model.image_size() as f32;
        let mut coords = Vec::new();
        let mut labels = Vec::new();
        if let Some([x0, y0, x1, y1]) = prompt.bbox {
            coords.extend([x0, y0, x1, y1]);
            labels.extend([2f32, 3.0]);
        }
        for &(x, y, l) in &prompt.points {
            coords.extend([x, y]);
            labels.push(l as f32);
        }
        // points / [W, H] * image_size, in f32 like the reference
        let np = labels.len();
        let scaled: Vec<f32> = coords
            .chunks(2)
            .flat_map(|p| [p[0] / w as f32 * s, p[1] / h as f32 * s])
            .collect();
        let point_inputs = PointInputs {
            coords: Tensor::from_vec(scaled, (1, np, 2), &self.device)?,
            labels: Tensor::from_vec(labels, (1, np), &self.device)?,
        };
        let oi = self.obj_idx(obj_id);
        let obj = &mut self.objects[oi];
        obj.point_inputs.insert(frame_idx, point_inputs.clone());
        let is_init_cond = !obj.tracked.contains_key(&frame_idx);
        let reverse = obj.tracked.get(&frame_idx).copied().unwrap_or(false);
        let is_cond = is_init_cond;
        let prev = {
            let temp = if is_cond {
                &obj.temp_cond
            } else {
                &obj.temp_non_cond
            };
            temp_get(temp, frame_idx)
                .or_else(|| obj.out.cond_get(frame_idx))
                .or_else(|| obj.out.non_cond.get(&frame_idx))
                .and_then(|o| o.pred_masks.clone())
        };
        let prev = match prev {
            Some(p) => Some(p.clamp(-32f32, 32f32)?),
            None => None,
        };
        let (out, _) = self.run_single_frame(
            oi,
            frame_idx,
            is_init_cond,
            Some(&point_inputs),
            reverse,
            false,
            prev.as_ref(),
        )?;
        let obj = &mut self.objects[oi];
        if is_cond {
            temp_put(&mut obj.temp_cond, frame_idx, out);
        } else {
            temp_put(&mut obj.temp_non_cond, frame_idx, out);
        }
        self.frame_result(frame_idx, is_cond)
    }

    /// `_run_single_frame_inference` for one object.
    #[allow(clippy::too_many_arguments)]
    fn run_single_frame(
        &mut self,
        oi: usize,
        frame_idx: usize,
        is_init_cond: bool,
        point_inputs: Option<&PointInputs>,
        reverse: bool,
        run_mem_encoder: bool,
        prev_logits: Option<&Tensor>,
    ) -> Result<(FrameOutput, Tensor)> {
        let feats = self.features(frame_idx)?;
        let model = self.model;
        let tcfg = &model.cfg.tracker;
        let num_frames = self.num_frames();
        let obj = &self.objects[oi];
        let dev = self.device.clone();
        let ctx = &self.ctx;
        let pix_feat = {
            let (mems, ptrs) = obj.out.select(tcfg, frame_idx, num_frames, reverse);
            ctx.stage("memory_conditioning", &dev, || {
                model.memory_conditioned_features_ctx(
                    &feats,
                    is_init_cond,
                    &mems,
                    &ptrs,
                    num_frames,
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
        let high_res = model.high_res_pair(&feats);
        let sam = ctx.stage("sam_heads", &dev, || {
            model.forward_sam_heads(&pix_feat, point_inputs, prev_logits, high_res, multimask)
        })?;
        ctx.fence(&dev, FencePoint::Heads)?;
        let memory = if run_mem_encoder && tcfg.num_maskmem > 0 {
            Some(ctx.stage("memory_encoder", &dev, || {
                model.store_memory(model.encode_new_memory(
                    &feats.vision_feat,
                    &sam.high_res_masks,
                    &sam.object_score_logits,
                    point_inputs.is_some(),
                )?)
            })?)
        } else {
            None
        };
        let pred_masks = if tcfg.fill_hole_area > 0 {
            ctx.stage("fill_holes", &dev, || {
                fill_holes_in_mask_scores(&sam.low_res_masks, tcfg.fill_hole_area)
            })?
        } else {
            sam.low_res_masks.clone()
        };
        let out = FrameOutput {
            memory,
            pred_masks: Some(pred_masks.clone()),
            obj_ptr: sam.obj_ptr,
            object_score_logits: sam.object_score_logits,
        };
        Ok((out, pred_masks))
    }

    /// `propagate_in_video_preflight`: encode the memories of prompted frames and move them
    /// into the output store.
    fn preflight(&mut self) -> Result<()> {
        if self.objects.is_empty() {
            return Err(Error::Input(
                "no prompt was added; add a point or box prompt first".into(),
            ));
        }
        let s = self.model.image_size();
        for oi in 0..self.objects.len() {
            for is_cond in [false, true] {
                let temp = if is_cond {
                    std::mem::take(&mut self.objects[oi].temp_cond)
                } else {
                    std::mem::take(&mut self.objects[oi].temp_non_cond)
                };
                for (f, mut out) in temp {
                    if out.memory.is_none() {
                        let pm = out
                            .pred_masks
                            .as_ref()
                            .ok_or_else(|| Error::Other("prompted frame lost its mask".into()))?;
                        let high = interpolate::bilinear(pm, (s, s))?;
                        let feats = self.features(f)?;
                        let mem = self.model.encode_new_memory(
                            &feats.vision_feat,
                            &high,
                            &out.object_score_logits,
                            true,
                        )?;
                        out.memory = Some(self.model.store_memory(mem)?);
                    }
                    let obj = &mut self.objects[oi];
                    if is_cond {
                        obj.out.cond_insert(f, out);
                    } else {
                        obj.out.non_cond.insert(f, out);
                    }
                }
            }
            let obj = &mut self.objects[oi];
            if obj.out.cond.is_empty() {
                return Err(Error::Input(format!(
                    "object {} has no prompt; add a point or box prompt first",
                    obj.obj_id
                )));
            }
            let conds: Vec<usize> = obj.out.cond.iter().map(|(t, _)| *t).collect();
            for f in conds {
                obj.out.non_cond.remove(&f);
            }
        }
        Ok(())
    }

    /// `propagate_in_video`: track every object from `start` (default: the earliest prompted
    /// frame) for up to `max_frames` frames, forward or in reverse; `on_frame` receives each
    /// frame's result as soon as it is computed.
    pub fn propagate(
        &mut self,
        start: Option<usize>,
        max_frames: Option<usize>,
        reverse: bool,
        mut on_frame: impl FnMut(FrameResult) -> Result<()>,
    ) -> Result<()> {
        self.preflight()?;
        let n = self.num_frames();
        let start = match start {
            Some(s) => s,
            None => self
                .objects
                .iter()
                .flat_map(|o| o.out.cond.iter().map(|(t, _)| *t))
                .min()
                .ok_or_else(|| Error::Input("no prompt was added".into()))?,
        };
        let max_frames = max_frames.unwrap_or(n);
        let order: Vec<usize> = if reverse {
            let end = start.saturating_sub(max_frames);
            if start > 0 {
                (end..=start).rev().collect()
            } else {
                Vec::new()
            }
        } else {
            let end = (start + max_frames).min(n - 1);
            (start..=end).collect()
        };
        for f in order {
            for oi in 0..self.objects.len() {
                if self.objects[oi].out.cond_get(f).is_none() {
                    let (out, _) =
                        self.run_single_frame(oi, f, false, None, reverse, true, None)?;
                    self.objects[oi].out.non_cond.insert(f, out);
                }
                self.objects[oi].tracked.insert(f, reverse);
            }
            let dev = self.device.clone();
            let res = self
                .ctx
                .stage("frame_result", &dev, || self.frame_result(f, true))?;
            if self.opts.retention == Retention::Window {
                let tcfg = self.model.cfg.tracker.clone();
                for obj in &mut self.objects {
                    obj.out.evict(&tcfg, f);
                }
            }
            on_frame(res)?;
        }
        Ok(())
    }

    /// Consolidate every object's output on a frame and resize it to the video resolution.
    fn frame_result(&self, frame_idx: usize, prefer_cond: bool) -> Result<FrameResult> {
        let lo = self.model.image_size() / 4;
        let mut low = Vec::new();
        let mut scores = Vec::new();
        let mut ptrs = Vec::new();
        for obj in &self.objects {
            let temp = if prefer_cond {
                &obj.temp_cond
            } else {
                &obj.temp_non_cond
            };
            let out = temp_get(temp, frame_idx)
                .or_else(|| obj.out.cond_get(frame_idx))
                .or_else(|| obj.out.non_cond.get(&frame_idx));
            match out.and_then(|o| o.pred_masks.as_ref().map(|m| (o, m))) {
                Some((o, m)) => {
                    low.push(m.clone());
                    scores.push(Some(
                        o.object_score_logits
                            .flatten_all()?
                            .to_dtype(DType::F32)?
                            .to_vec1::<f32>()?[0],
                    ));
                    ptrs.push(Some(o.obj_ptr.clone()));
                }
                None => {
                    low.push(Tensor::full(
                        NO_OBJ_SCORE as f32,
                        (1, 1, lo, lo),
                        &self.device,
                    )?);
                    scores.push(None);
                    ptrs.push(None);
                }
            }
        }
        let low_res_masks = Tensor::cat(&low, 0)?;
        let (h, w) = self.video_size();
        let video_res_masks = interpolate::bilinear(&low_res_masks, (h, w))?;
        Ok(FrameResult {
            frame_idx,
            obj_ids: self.obj_ids(),
            video_res_masks,
            low_res_masks,
            object_score_logits: scores,
            obj_ptrs: ptrs,
        })
    }

    /// Number of stored outputs per object (conditioning, non-conditioning, with memory), for
    /// memory accounting and tests of the retention bound.
    pub fn bank_sizes(&self) -> BTreeMap<u32, (usize, usize, usize)> {
        self.objects
            .iter()
            .map(|o| {
                let with_mem = o
                    .out
                    .non_cond
                    .values()
                    .filter(|x| x.memory.is_some())
                    .count()
                    + o.out
                        .cond
                        .iter()
                        .filter(|(_, x)| x.memory.is_some())
                        .count();
                (o.obj_id, (o.out.cond.len(), o.out.non_cond.len(), with_mem))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! Two sessions with different execution policies on one model in one process: each keeps
    //! its own (nothing about how a session runs is process-wide state).

    use super::*;
    use crate::profile::{ProfileMode, Profiler};
    use crate::tracker::frames::RgbFrames;
    use candle_nn::VarBuilder;
    use std::path::PathBuf;

    const FRAMES: usize = 5;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
    }

    /// The small SAM 2.1 test variant with its fixture checkpoint (CPU, f32).
    fn model() -> Sam2Base {
        let cfg =
            crate::config::ModelConfig::from_file(&fixtures().join("models/sam2.1_test.json"))
                .unwrap();
        let ckpt = fixtures().join("fixtures/sam2_test/model.pt");
        let map: HashMap<String, Tensor> =
            candle_core::pickle::read_all_with_key(&ckpt, Some("model"))
                .unwrap()
                .into_iter()
                .collect();
        Sam2Base::new(
            &cfg,
            VarBuilder::from_tensors(map, DType::F32, &Device::Cpu),
        )
        .unwrap()
    }

    /// The first frames of the `video_test` fixture (Pillow-decoded RGB).
    fn frames() -> Box<RgbFrames> {
        let p = fixtures().join("fixtures/video_test/pillow_rgb.safetensors");
        let rgb = candle_core::safetensors::load(&p, &Device::Cpu).unwrap()["rgb"].clone();
        let (_, h, w, _) = rgb.dims4().unwrap();
        let frames = (0..FRAMES)
            .map(|i| rgb.get(i).unwrap().flatten_all().unwrap().to_vec1::<u8>())
            .collect::<candle_core::Result<Vec<_>>>()
            .unwrap();
        Box::new(RgbFrames::new(frames, w as u32, h as u32).unwrap())
    }

    fn point(x: f32, y: f32) -> Prompt {
        Prompt {
            points: vec![(x, y, 1)],
            bbox: None,
        }
    }

    fn logits(r: &FrameResult) -> Vec<f32> {
        r.low_res_masks.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// One session alone: prompt frame 0, track every frame in one call.
    fn alone(model: &Sam2Base, opts: SessionOptions, prompt: &Prompt) -> Vec<Vec<f32>> {
        let mut s = Session::with_frames(model, frames(), &Device::Cpu, opts);
        s.add_prompt(0, 1, prompt).unwrap();
        let mut out = Vec::new();
        s.propagate(Some(0), None, false, |r| {
            out.push(logits(&r));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn two_sessions_keep_their_own_execution_policy() {
        let model = model();
        let (w, h) = {
            let f = frames();
            let (h, w) = f.size();
            (w as f32, h as f32)
        };
        let (prompt_a, prompt_b) = (point(w * 0.5, h * 0.5), point(w * 0.25, h * 0.75));
        let profiled = Arc::new(Profiler::new(ProfileMode::Synchronized));
        let opts_a = SessionOptions {
            memory_fences: Some(FenceSet::all()),
            cuda_graph: true,
            profiler: Some(profiled.clone()),
            ..Default::default()
        };
        let opts_b = SessionOptions {
            memory_fences: Some(FenceSet::NONE),
            cuda_graph: false,
            profiler: None,
            ..Default::default()
        };
        let mut a = Session::with_frames(&model, frames(), &Device::Cpu, opts_a.clone());
        // Opening a second session with other options leaves the first one's policy alone.
        let mut b = Session::with_frames(&model, frames(), &Device::Cpu, opts_b.clone());
        assert_eq!(a.exec_ctx().fences(), FenceSet::all());
        assert!(a.exec_ctx().trunk_graph());
        assert!(
            !a.exec_ctx().graph_trunk(),
            "profiling keeps the trunk eager"
        );
        assert!(a.exec_ctx().profiler().is_some());
        assert_eq!(b.exec_ctx().fences(), FenceSet::NONE);
        assert!(!b.exec_ctx().trunk_graph() && b.exec_ctx().profiler().is_none());

        // Interleaved frame by frame.
        a.add_prompt(0, 1, &prompt_a).unwrap();
        b.add_prompt(0, 1, &prompt_b).unwrap();
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        for f in 0..FRAMES {
            a.propagate(Some(f), Some(0), false, |r| {
                got_a.push(logits(&r));
                Ok(())
            })
            .unwrap();
            b.propagate(Some(f), Some(0), false, |r| {
                got_b.push(logits(&r));
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(a.exec_ctx().fences(), FenceSet::all());
        assert_eq!(b.exec_ctx().fences(), FenceSet::NONE);

        // Each equals its single-session run, bit for bit.
        let reference = Arc::new(Profiler::new(ProfileMode::Synchronized));
        let want_a = alone(
            &model,
            opts_a.with_profiler(Some(reference.clone())),
            &prompt_a,
        );
        let want_b = alone(&model, opts_b, &prompt_b);
        assert_eq!(got_a.len(), FRAMES);
        assert_eq!(got_a, want_a);
        assert_eq!(got_b, want_b);
        assert_ne!(got_a, got_b, "the two prompts track different masks");

        // The profiler of session a saw a's stages only: the same calls as a's run alone, from
        // the session's own stages down to the Hiera blocks and the memory-attention layers.
        let stages = profiled.stages();
        assert_eq!(stages, reference.stages());
        for s in [
            "image_encoder",
            "image_encoder.trunk",
            "hiera.mlp",
            "mem_attn.attend",
            "sam_heads",
        ] {
            assert!(stages.contains(&s), "{s} not profiled: {stages:?}");
        }
        for s in stages {
            assert_eq!(profiled.calls(s), reference.calls(s), "stage {s}");
        }
    }
}
