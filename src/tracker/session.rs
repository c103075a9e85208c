//! A tracking session on one video: the Rust counterpart of the official `SAM2VideoPredictor`
//! (per-object, `sam2/sam2_video_predictor.py`), for one or several objects, each tracked as
//! its own object with its own memory bank, prompted by clicks, boxes or masks.
//!
//! Objects: every object keeps its own outputs, memories and prompts, as in the official
//! predictor since its per-object update; what they share is the frame: one image-encoder pass
//! per frame for all objects ([`FeatureCache`]: the most recent frame, and prompted frames until
//! a propagation has visited them). An object may join at any frame: a forward propagation runs
//! it from its first conditioning (prompted) frame on and gives no output for it before (the
//! semantics of the official `tools/vos_inference.py --track_object_appearing_later_in_video`,
//! which runs each object from its first annotated frame). A backward propagation runs every
//! object, as the official `propagate_in_video(reverse=True)` does.
//!
//! The per-object work of a tracked frame runs batched over the objects or in a per-object loop
//! ([`ObjectBatching`], [`crate::tracker::step`]); post-processing follows the official
//! `apply_postprocessing` switch ([`PostProcessing`]).
//!
//! Frames are decoded lazily (a folder of JPEGs: at most three resized frames in host memory at
//! once, see [`PrefetchingFrames`]). What the session keeps per object is bounded by
//! [`Retention`] (see [`crate::tracker::memory_bank`]); the memories' position encoding, the same
//! for every frame and object, is stored once.

use crate::config::{FenceSet, ObjectBatching, PostProcessing};
use crate::cuda::graph::GraphedFn;
use crate::data::masks::Mask;
use crate::error::{Error, Result};
use crate::exec::ExecCtx;
use crate::nn::interpolate;
use crate::nn::ContiguousExt;
use crate::profile::Profiler;
use crate::sam2::sam2_base::{FrameFeatures, Memory, PointInputs, Sam2Base, NO_OBJ_SCORE};
use crate::tracker::features::FeatureCache;
use crate::tracker::frames::{FrameSource, PrefetchingFrames, VideoFrames};
use crate::tracker::memory_bank::{FrameOutput, OutputStore, Retention};
use crate::tracker::step::FrameStep;
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

/// How a session runs. The execution policy among them (fences, CUDA graphs, profiler) becomes
/// the session's own [`ExecCtx`] when it opens: it applies to this session only.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub retention: Retention,
    /// Where each frame waits for the device so the memory pool can reuse what the frame freed
    /// (CUDA; [`ExecCtx::fence`]). None: [`FenceSet::auto`] for the model's dtype.
    pub memory_fences: Option<FenceSet>,
    /// Replay the image encoder's trunk and the step of a tracked frame (memory attention, SAM
    /// heads, memory encoder) as CUDA graphs (`crate::cuda::graph`; kept eager while profiling).
    pub cuda_graph: bool,
    /// The stage profiler this session's frames report to (`VOSBENCH_PROFILE`, owned by the
    /// CLI); None: nothing is timed.
    pub profiler: Option<Arc<Profiler>>,
    /// The official predictor's `apply_postprocessing` (hole filling, binarized prompt masks in
    /// memory, dynamic multimask); on by default, as `build_sam2_video_predictor` has it.
    pub postprocessing: PostProcessing,
    /// Objects of a tracked frame batched (default) or one after the other.
    pub object_batching: ObjectBatching,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            retention: Retention::Window,
            memory_fences: None,
            cuda_graph: false,
            profiler: None,
            postprocessing: PostProcessing::On,
            object_batching: ObjectBatching::Batched,
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
    /// Every object of the session, in the order they were first prompted.
    pub obj_ids: Vec<u32>,
    /// [N_obj, 1, H, W] logits at the video's resolution (threshold at > 0); `NO_OBJ_SCORE`
    /// for an object with no output on this frame
    pub video_res_masks: Tensor,
    /// [N_obj, 1, S/4, S/4] hole-filled low-res logits
    pub low_res_masks: Tensor,
    /// per object; None for an object with no output on this frame
    pub object_score_logits: Vec<Option<f32>>,
    /// [1, C] per object
    pub obj_ptrs: Vec<Option<Tensor>>,
}

impl FrameResult {
    /// Whether object `obj` (an index into `obj_ids`) has an output on this frame.
    pub fn has_output(&self, obj: usize) -> bool {
        self.object_score_logits
            .get(obj)
            .is_some_and(|s| s.is_some())
    }
}

#[derive(Debug, Default)]
struct ObjectState {
    obj_id: u32,
    out: OutputStore,
    temp_cond: Vec<(usize, FrameOutput)>,
    temp_non_cond: Vec<(usize, FrameOutput)>,
    /// frame -> tracked in reverse
    tracked: HashMap<usize, bool>,
}

impl ObjectState {
    /// The earliest conditioning frame (after preflight).
    fn first_cond(&self) -> Option<usize> {
        self.out.cond.iter().map(|(t, _)| *t).min()
    }

    /// Whether a propagation in this direction runs the object on `frame` (it has no prompt
    /// there): always backward; forward only from its first conditioning frame on.
    fn runs_on(&self, frame: usize, reverse: bool) -> bool {
        reverse || self.first_cond().is_some_and(|c| frame >= c)
    }

    /// Where a prompt on `frame` goes: (initial conditioning frame, reverse, stored as cond).
    fn prompt_kind(&self, frame: usize) -> (bool, bool, bool) {
        let is_init_cond = !self.tracked.contains_key(&frame);
        let reverse = self.tracked.get(&frame).copied().unwrap_or(false);
        // `add_all_frames_to_correct_as_cond` is off: a correction stays non-conditioning
        (is_init_cond, reverse, is_init_cond)
    }

    /// The most recent output on `frame` (temporary first), as the official lookup does.
    fn latest(&self, frame: usize, is_cond: bool) -> Option<&FrameOutput> {
        let temp = if is_cond {
            &self.temp_cond
        } else {
            &self.temp_non_cond
        };
        temp_get(temp, frame)
            .or_else(|| self.out.cond_get(frame))
            .or_else(|| self.out.non_cond.get(&frame))
    }

    fn put_temp(&mut self, frame: usize, is_cond: bool, out: FrameOutput) {
        let temp = if is_cond {
            &mut self.temp_cond
        } else {
            &mut self.temp_non_cond
        };
        if let Some(slot) = temp.iter_mut().find(|(t, _)| *t == frame) {
            slot.1 = out;
        } else {
            temp.push((frame, out));
        }
    }
}

pub struct Session<'m> {
    model: &'m Sam2Base,
    frames: Box<dyn FrameSource + 'm>,
    device: Device,
    opts: SessionOptions,
    /// This session's execution policy, passed to every model forward it runs.
    ctx: ExecCtx,
    objects: Vec<ObjectState>,
    features: FeatureCache,
    /// The memories' position encoding ([1, N, Cm]), identical for every frame and object:
    /// stored once (the official predictor keeps it as a session constant too).
    memory_pos: Option<Tensor>,
    /// The step of a tracked frame as a CUDA graph, this session's own (its shapes are its
    /// objects' and its bank's).
    step_graph: GraphedFn,
}

fn temp_get(v: &[(usize, FrameOutput)], f: usize) -> Option<&FrameOutput> {
    v.iter().find(|(t, _)| *t == f).map(|(_, o)| o)
}

/// A mask prompt as the model takes it (`add_new_mask`): the video-size binary mask resized to
/// the model's `image_size` square with PyTorch's antialiased bilinear interpolation when the
/// sizes differ, then `>= 0.5`. -> [1, 1, S, S] f32 in {0, 1} on `device`.
pub fn mask_prompt_input(mask: &Mask, image_size: usize, device: &Device) -> Result<Tensor> {
    let (w, h) = (mask.width, mask.height);
    let px: Vec<f32> = mask.data.iter().map(|&b| b as u8 as f32).collect();
    let m = Tensor::from_vec(px, (1, 1, h, w), device)?;
    if (h, w) == (image_size, image_size) {
        return Ok(m);
    }
    let resized = interpolate::bilinear_antialias(&m, (image_size, image_size))?;
    Ok(resized.ge(0.5)?.to_dtype(DType::F32)?)
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
            features: FeatureCache::default(),
            memory_pos: None,
            step_graph: GraphedFn::default(),
        }
    }

    /// The execution policy this session passes down its forwards.
    pub fn exec_ctx(&self) -> &ExecCtx {
        &self.ctx
    }

    /// The options the session was opened with.
    pub fn options(&self) -> &SessionOptions {
        &self.opts
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

    /// Every object of the session, in the order they were first prompted.
    pub fn obj_ids(&self) -> Vec<u32> {
        self.objects.iter().map(|o| o.obj_id).collect()
    }

    /// Whether the step of a tracked frame runs as a CUDA graph: `off`, `eager` (warming up),
    /// `captured` or `failed: <why>` (`crate::cuda::graph`).
    pub fn step_graph_status(&self) -> String {
        self.step_graph.status()
    }

    /// Image-encoder (trunk + neck) passes this session has run: one per frame it needed,
    /// whatever the number of objects (see [`FeatureCache`]).
    pub fn image_encoder_passes(&self) -> usize {
        self.features.passes()
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

    /// The features of `frame_idx`, encoded once while kept; `pin` keeps them until a
    /// propagation visits the frame (prompted frames).
    fn features(&mut self, frame_idx: usize, pin: bool) -> Result<FrameFeatures> {
        if let Some(f) = self.features.get(frame_idx, pin) {
            return Ok(f);
        }
        let dev = self.device.clone();
        let img = self.ctx.stage("frame.load", &dev, || {
            self.frames
                .load_tensor(frame_idx, self.model.image_size(), &self.device)
        })?;
        let feats = self.ctx.stage("image_encoder", &dev, || {
            self.model.forward_image_ctx(&img, &self.ctx)
        })?;
        self.features.insert(frame_idx, feats.clone(), pin);
        Ok(feats)
    }

    fn step<'a>(
        &'a self,
        feats: &'a FrameFeatures,
        frame_idx: usize,
        reverse: bool,
    ) -> FrameStep<'a> {
        FrameStep {
            model: self.model,
            ctx: &self.ctx,
            feats,
            frame_idx,
            num_frames: self.num_frames(),
            reverse,
            post: self.opts.postprocessing,
            graph: &self.step_graph,
        }
    }

    fn check_frame(&self, frame_idx: usize) -> Result<()> {
        let n = self.num_frames();
        if frame_idx >= n {
            return Err(Error::Input(format!(
                "prompt frame {frame_idx} is outside the video ({n} frames)"
            )));
        }
        Ok(())
    }

    /// `add_new_points_or_box`: prompt object `obj_id` on `frame_idx` with clicks and/or a box
    /// (replacing the object's earlier prompt on that frame; its latest output there, e.g. a mask
    /// prompt's, is fed to the heads with the clicks). Returns the masks of all objects on that
    /// frame.
    pub fn add_prompt(
        &mut self,
        frame_idx: usize,
        obj_id: u32,
        prompt: &Prompt,
    ) -> Result<FrameResult> {
        self.check_frame(frame_idx)?;
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
        let (is_init_cond, reverse, is_cond) = self.objects[oi].prompt_kind(frame_idx);
        let prev = match self.objects[oi]
            .latest(frame_idx, is_cond)
            .and_then(|o| o.pred_masks.as_ref())
        {
            Some(p) => Some(p.clamp(-32f32, 32f32)?),
            None => None,
        };
        let feats = self.features(frame_idx, true)?;
        let out = self.step(&feats, frame_idx, reverse).run_one(
            &self.objects[oi].out,
            is_init_cond,
            Some(&point_inputs),
            prev.as_ref(),
            false,
        )?;
        self.objects[oi].put_temp(frame_idx, is_cond, out);
        self.frame_result(frame_idx, is_cond)
    }

    /// `add_new_mask`: prompt object `obj_id` on `frame_idx` with a binary mask of the video's
    /// size (replacing the object's earlier prompt on that frame). The mask is resized to the
    /// model's input as the official predictor does ([`mask_prompt_input`]) and becomes the
    /// frame's output (`_use_mask_as_output`); its memory is encoded when propagation starts.
    /// An empty mask, or one of another size, is an input error. Returns the masks of all
    /// objects on that frame.
    pub fn add_mask(&mut self, frame_idx: usize, obj_id: u32, mask: &Mask) -> Result<FrameResult> {
        self.check_frame(frame_idx)?;
        let (h, w) = self.video_size();
        if (mask.width, mask.height) != (w, h) {
            return Err(Error::Input(format!(
                "mask prompt of object {obj_id} is {}x{}, the video is {w}x{h}",
                mask.width, mask.height
            )));
        }
        if mask.is_empty() {
            return Err(Error::Input(format!(
                "mask prompt of object {obj_id} on frame {frame_idx} is empty"
            )));
        }
        let mask_inputs = mask_prompt_input(mask, self.model.image_size(), &self.device)?;
        let oi = self.obj_idx(obj_id);
        let (_, reverse, is_cond) = self.objects[oi].prompt_kind(frame_idx);
        let feats = self.features(frame_idx, true)?;
        let out = self
            .step(&feats, frame_idx, reverse)
            .mask_as_output(&mask_inputs)?;
        self.objects[oi].put_temp(frame_idx, is_cond, out);
        self.frame_result(frame_idx, is_cond)
    }

    /// A freshly encoded memory as the session stores it: the position encoding replaced by the
    /// session's single copy.
    fn keep_memory(&mut self, memory: Memory) -> Result<Memory> {
        let pos = match &self.memory_pos {
            Some(p) if p.dims() == memory.pos.dims() => p.clone(),
            _ => {
                let p = memory.pos.copy()?;
                self.memory_pos = Some(p.clone());
                p
            }
        };
        Ok(Memory {
            features: memory.features,
            pos,
        })
    }

    fn keep_output(&mut self, mut out: FrameOutput) -> Result<FrameOutput> {
        if let Some(m) = out.memory.take() {
            out.memory = Some(self.keep_memory(m)?);
        }
        Ok(out)
    }

    /// `propagate_in_video_preflight`: encode the memories of prompted frames (per frame, for
    /// every object prompted there at once when batching) and move them into the output store.
    fn preflight(&mut self) -> Result<()> {
        if self.objects.is_empty() {
            return Err(Error::Input(
                "no prompt was added; add a point, box or mask prompt first".into(),
            ));
        }
        // (object, cond, index in its temp list) of every output without memory, by frame
        let mut pending: BTreeMap<usize, Vec<(usize, bool, usize)>> = BTreeMap::new();
        for (oi, obj) in self.objects.iter().enumerate() {
            for (is_cond, temp) in [(false, &obj.temp_non_cond), (true, &obj.temp_cond)] {
                for (k, (f, out)) in temp.iter().enumerate() {
                    if out.memory.is_none() {
                        pending.entry(*f).or_default().push((oi, is_cond, k));
                    }
                }
            }
        }
        let s = self.model.image_size();
        for (f, list) in pending {
            let feats = self.features(f, true)?;
            let mut masks = Vec::with_capacity(list.len());
            let mut scores = Vec::with_capacity(list.len());
            for &(oi, is_cond, k) in &list {
                let obj = &self.objects[oi];
                let out = if is_cond {
                    &obj.temp_cond[k].1
                } else {
                    &obj.temp_non_cond[k].1
                };
                let pm = out
                    .pred_masks
                    .as_ref()
                    .ok_or_else(|| Error::Other("prompted frame lost its mask".into()))?;
                masks.push(interpolate::bilinear(pm, (s, s))?);
                scores.push(out.object_score_logits.clone());
            }
            let step = self.step(&feats, f, false);
            let memories: Vec<Memory> = match self.opts.object_batching {
                ObjectBatching::Batched if list.len() > 1 => {
                    let n = list.len();
                    let (_, c, h, w) = feats.vision_feat.dims4()?;
                    let vision = feats
                        .vision_feat
                        .broadcast_as((n, c, h, w))?
                        .contiguous_fast()?;
                    let m = step.encode_memory(
                        &vision,
                        &Tensor::cat(&masks, 0)?,
                        &Tensor::cat(&scores, 0)?,
                        true,
                    )?;
                    (0..n)
                        .map(|i| {
                            Ok(Memory {
                                features: m.features.narrow(0, i, 1)?.copy()?,
                                pos: m.pos.narrow(0, i, 1)?,
                            })
                        })
                        .collect::<Result<_>>()?
                }
                _ => masks
                    .iter()
                    .zip(&scores)
                    .map(|(m, sc)| step.encode_memory(&feats.vision_feat, m, sc, true))
                    .collect::<Result<_>>()?,
            };
            for ((oi, is_cond, k), m) in list.into_iter().zip(memories) {
                let m = self.keep_memory(m)?;
                let obj = &mut self.objects[oi];
                let slot = if is_cond {
                    &mut obj.temp_cond[k].1
                } else {
                    &mut obj.temp_non_cond[k].1
                };
                slot.memory = Some(m);
            }
        }
        for obj in &mut self.objects {
            for (f, out) in std::mem::take(&mut obj.temp_non_cond) {
                obj.out.non_cond.insert(f, out);
            }
            for (f, out) in std::mem::take(&mut obj.temp_cond) {
                obj.out.cond_insert(f, out);
            }
            if obj.out.cond.is_empty() {
                return Err(Error::Input(format!(
                    "object {} has no prompt; add a point, box or mask prompt first",
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

    /// `propagate_in_video`: track from `start` (default: the earliest prompted frame) for up to
    /// `max_frames` frames, forward or in reverse; `on_frame` receives each frame's result as
    /// soon as it is computed. Forward, an object runs from its first conditioning frame on (no
    /// output before it); backward, every object runs.
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
                .filter_map(ObjectState::first_cond)
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
            self.track_frame(f, reverse)?;
            self.features.visited(f);
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

    /// Run frame `f` for the objects that track there (not prompted there, and joined already
    /// when going forward), batched or in a loop; the features are computed only if some object
    /// needs them.
    fn track_frame(&mut self, f: usize, reverse: bool) -> Result<()> {
        let mut run = Vec::new();
        for (oi, obj) in self.objects.iter_mut().enumerate() {
            if obj.out.cond_get(f).is_some() {
                obj.tracked.insert(f, reverse);
            } else if obj.runs_on(f, reverse) {
                run.push(oi);
            }
        }
        if run.is_empty() {
            return Ok(());
        }
        let feats = self.features(f, false)?;
        let step = self.step(&feats, f, reverse);
        let outs = match self.opts.object_batching {
            ObjectBatching::Batched => {
                let stores: Vec<&OutputStore> =
                    run.iter().map(|&oi| &self.objects[oi].out).collect();
                step.track_batched(&stores)?
            }
            ObjectBatching::Looped => run
                .iter()
                .map(|&oi| step.track_one(&self.objects[oi].out))
                .collect::<Result<_>>()?,
        };
        for (oi, out) in run.into_iter().zip(outs) {
            let out = self.keep_output(out)?;
            let obj = &mut self.objects[oi];
            obj.out.non_cond.insert(f, out);
            obj.tracked.insert(f, reverse);
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
            let out = obj.latest(frame_idx, prefer_cond);
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
