//! `SAM2Base` (`sam2/modeling/sam2_base.py`): the network-level glue the tracker drives. It owns
//! every sub-network and computes, for one frame, what the official model computes: backbone
//! features with the high-res projections, memory-conditioned features, the SAM heads with
//! no-object handling and the object pointer, and the encoding of a new memory.
//!
//! Which memories and pointers a frame attends to (the memory bank policy) is the tracker's job
//! (`crate::tracker`); this module turns a chosen set into the token sequence memory attention
//! consumes. EdgeTAM is this same structure with a RepViT trunk and a spatial perceiver.

use crate::config::{ModelConfig, PostProcessing};
use crate::exec::ExecCtx;
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::interpolate;
use crate::nn::linear::Linear;
use crate::nn::mlp::Mlp;
use crate::nn::position_encoding::get_1d_sine_pe;
use crate::nn::{ContiguousExt, ModelOptions};
use crate::sam2::backbones::image_encoder::ImageEncoder;
use crate::sam2::mask_decoder::MaskDecoder;
use crate::sam2::memory_attention::MemoryAttention;
use crate::sam2::memory_encoder::MemoryEncoder;
use crate::sam2::perceiver::PerceiverResampler;
use crate::sam2::prompt_encoder::PromptEncoder;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Mask logit written where the object is predicted absent.
pub const NO_OBJ_SCORE: f64 = -1024.0;

/// Point prompts in model-input pixels (the `image_size` square frame).
#[derive(Debug, Clone)]
pub struct PointInputs {
    /// [B, N, 2] (x, y)
    pub coords: Tensor,
    /// [B, N] as f32: 1 positive, 0 negative, 2/3 box corners, -1 padding
    pub labels: Tensor,
}

impl PointInputs {
    pub fn num_points(&self) -> Result<usize> {
        self.labels.dim(1)
    }
}

/// The seven outputs of `_forward_sam_heads`, in the same order.
#[derive(Debug, Clone)]
pub struct SamOutputs {
    /// [B, M, S/4, S/4] (M = 3 with multimask, else 1), NO_OBJ_SCORE where absent
    pub low_res_multimasks: Tensor,
    /// [B, M, S, S]
    pub high_res_multimasks: Tensor,
    /// [B, M]
    pub ious: Tensor,
    /// [B, 1, S/4, S/4]: the selected mask
    pub low_res_masks: Tensor,
    /// [B, 1, S, S]
    pub high_res_masks: Tensor,
    /// [B, C]
    pub obj_ptr: Tensor,
    /// [B, 1]
    pub object_score_logits: Tensor,
}

/// Backbone features of one frame, as the tracker caches them.
#[derive(Debug, Clone)]
pub struct FrameFeatures {
    /// [B, C, e, e]: the lowest-resolution FPN level (`vision_feats[-1]`)
    pub vision_feat: Tensor,
    /// [B, C, e, e]: its sine position encoding
    pub vision_pos: Tensor,
    /// [B, C/8, 4e, 4e] and [B, C/4, 2e, 2e], already through conv_s0 / conv_s1
    pub high_res: Vec<Tensor>,
}

impl FrameFeatures {
    fn high_res_pair(&self) -> Option<(&Tensor, &Tensor)> {
        match self.high_res.as_slice() {
            [a, b] => Some((a, b)),
            _ => None,
        }
    }
}

/// The memory token sequences memory attention reads, objects on the batch dimension
/// ([`Sam2Base::memory_tokens_batch`]).
#[derive(Debug, Clone)]
pub struct MemoryTokens {
    /// [M, N, Cm]: the memory frames' tokens, then the object pointers' tokens.
    pub memory: Tensor,
    /// [M, N, Cm]: their spatial + temporal position encodings.
    pub pos: Tensor,
    /// Pointer tokens at the end of `memory` (not rotated by RoPE).
    pub num_obj_ptr_tokens: usize,
    /// Memory frames at the start of `memory`.
    pub num_spatial_mem: usize,
}

/// One encoded memory frame: token-major so SAM 2.1 (e*e tokens) and EdgeTAM (512 perceiver
/// latents) are stored alike.
#[derive(Debug, Clone)]
pub struct Memory {
    /// [B, N, Cm], bf16 when the variant stores memories in bf16 (as the official predictor does)
    pub features: Tensor,
    /// [B, N, Cm] spatial position encoding, f32
    pub pos: Tensor,
}

/// A memory chosen for the current frame with its temporal slot (0 = conditioning frame).
#[derive(Debug, Clone, Copy)]
pub struct MemoryRef<'a> {
    pub memory: &'a Memory,
    pub t_pos: usize,
}

/// An object pointer chosen for the current frame with its signed temporal distance.
#[derive(Debug, Clone, Copy)]
pub struct PointerRef<'a> {
    /// [B, C]
    pub obj_ptr: &'a Tensor,
    pub pos: i64,
}

#[derive(Debug)]
enum ObjPtrProj {
    Mlp(Mlp),
    Linear(Linear),
}

impl ObjPtrProj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            ObjPtrProj::Mlp(m) => m.forward(x),
            ObjPtrProj::Linear(l) => l.forward(x),
        }
    }
}

#[derive(Debug)]
pub struct Sam2Base {
    pub cfg: ModelConfig,
    pub image_encoder: ImageEncoder,
    pub memory_attention: MemoryAttention,
    pub memory_encoder: MemoryEncoder,
    pub spatial_perceiver: Option<PerceiverResampler>,
    pub sam_prompt_encoder: PromptEncoder,
    pub sam_mask_decoder: MaskDecoder,
    obj_ptr_proj: ObjPtrProj,
    obj_ptr_tpos_proj: Option<Linear>,
    /// [num_maskmem, 1, 1, Cm]
    maskmem_tpos_enc: Tensor,
    /// [1, 1, C]
    no_mem_embed: Tensor,
    /// [1, C]
    no_obj_ptr: Tensor,
    /// [1, Cm] (SAM 2.1 only)
    no_obj_embed_spatial: Option<Tensor>,
    mask_downsample: Conv2d,
}

impl Sam2Base {
    /// Build the whole network from a variant config and a VarBuilder at the checkpoint root,
    /// with the default [`ModelOptions`] (a convolution tuner of its own with default settings,
    /// fused attention where it applies).
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_with(cfg, &ModelOptions::default(), vb)
    }

    /// Build the whole network with the given build-time options (the caller keeps a clone of
    /// `opts.conv_tuner` to read the convolution choices afterwards).
    pub fn new_with(cfg: &ModelConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let c = cfg.hidden_dim();
        let cm = cfg.mem_dim();
        let t = &cfg.tracker;
        let image_encoder = ImageEncoder::new(cfg, opts, vb.pp("image_encoder"))?;
        let memory_attention =
            MemoryAttention::new(&cfg.memory_attention, opts, vb.pp("memory_attention"))?;
        let memory_encoder =
            MemoryEncoder::new(&cfg.memory_encoder, opts, vb.pp("memory_encoder"))?;
        let spatial_perceiver = match &cfg.spatial_perceiver {
            Some(p) => Some(PerceiverResampler::new(
                p,
                opts,
                vb.pp("spatial_perceiver"),
            )?),
            None => None,
        };
        let sam_prompt_encoder = PromptEncoder::new(cfg, opts, vb.pp("sam_prompt_encoder"))?;
        let sam_mask_decoder = MaskDecoder::new(cfg, opts, vb.pp("sam_mask_decoder"))?;
        let obj_ptr_proj = if t.use_mlp_for_obj_ptr_proj {
            ObjPtrProj::Mlp(Mlp::new(c, c, c, 3, false, vb.pp("obj_ptr_proj"))?)
        } else {
            ObjPtrProj::Linear(crate::nn::linear::linear(c, c, vb.pp("obj_ptr_proj"))?)
        };
        let obj_ptr_tpos_proj = if t.add_tpos_enc_to_obj_ptrs && t.proj_tpos_enc_in_obj_ptrs {
            Some(crate::nn::linear::linear(
                c,
                cm,
                vb.pp("obj_ptr_tpos_proj"),
            )?)
        } else {
            None
        };
        let maskmem_tpos_enc = vb.get((t.num_maskmem, 1, 1, cm), "maskmem_tpos_enc")?;
        let no_mem_embed = vb.get((1, 1, c), "no_mem_embed")?;
        let no_obj_ptr = vb.get((1, c), "no_obj_ptr")?;
        let no_obj_embed_spatial = if t.no_obj_embed_spatial {
            Some(vb.get((1, cm), "no_obj_embed_spatial")?)
        } else {
            None
        };
        let down_cfg = candle_nn::Conv2dConfig {
            stride: 4,
            ..Default::default()
        };
        let mask_downsample = conv2d(1, 1, 4, down_cfg, opts, vb.pp("mask_downsample"))?;
        Ok(Self {
            cfg: cfg.clone(),
            image_encoder,
            memory_attention,
            memory_encoder,
            spatial_perceiver,
            sam_prompt_encoder,
            sam_mask_decoder,
            obj_ptr_proj,
            obj_ptr_tpos_proj,
            maskmem_tpos_enc,
            no_mem_embed,
            no_obj_ptr,
            no_obj_embed_spatial,
            mask_downsample,
        })
    }

    pub fn hidden_dim(&self) -> usize {
        self.cfg.hidden_dim()
    }

    pub fn image_size(&self) -> usize {
        self.cfg.image_size
    }

    /// The dtype the network's weights were built in (`--precision`); inputs are cast to it and
    /// the tracker-facing outputs (mask logits, scores, pointers) come back as f32.
    pub fn dtype(&self) -> DType {
        self.no_mem_embed.dtype()
    }

    /// `forward_image` + `_prepare_backbone_features` with the default context (see
    /// [`Self::forward_image_ctx`]).
    pub fn forward_image(&self, img: &Tensor) -> Result<FrameFeatures> {
        self.forward_image_ctx(img, &ExecCtx::default())
    }

    /// `forward_image` + `_prepare_backbone_features` in a session's context (CUDA graphs,
    /// image-encoder fences and profiled stages).
    /// img: [B, 3, S, S] normalized -> features of the three kept FPN levels.
    pub fn forward_image_ctx(&self, img: &Tensor, ctx: &ExecCtx) -> Result<FrameFeatures> {
        let out = self
            .image_encoder
            .forward_ctx(&img.to_dtype(self.dtype())?, ctx)?;
        let n = out.backbone_fpn.len();
        if n < 1 {
            candle_core::bail!("image encoder returned no feature levels")
        }
        let mut high_res = Vec::new();
        if self.cfg.tracker.use_high_res_features_in_sam {
            if n < 3 {
                candle_core::bail!("high-res SAM features need 3 FPN levels, got {n}")
            }
            high_res.push(self.sam_mask_decoder.conv_s0(&out.backbone_fpn[0])?);
            high_res.push(self.sam_mask_decoder.conv_s1(&out.backbone_fpn[1])?);
        }
        Ok(FrameFeatures {
            vision_feat: out.backbone_fpn[n - 1].clone(),
            vision_pos: out.vision_pos_enc[n - 1].clone(),
            high_res,
        })
    }

    /// Whether the SAM head outputs 3 masks (`_use_multimask`).
    pub fn use_multimask(&self, is_init_cond_frame: bool, num_points: usize) -> bool {
        let t = &self.cfg.tracker;
        t.multimask_output_in_sam
            && (is_init_cond_frame || t.multimask_output_for_tracking)
            && (t.multimask_min_pt_num <= num_points && num_points <= t.multimask_max_pt_num)
    }

    /// `_forward_sam_heads`. Takes no execution context: nothing inside waits for the device or
    /// is a profiled stage (the session fences and profiles around it). `post` decides the mask
    /// decoder's dynamic multimask fallback (the predictor's `apply_postprocessing`).
    /// backbone_features: [B, C, e, e] (B objects, or prompt sets); mask_inputs: [B, 1, h, w]
    /// logits (resized to 4e if needed); high_res: batch B or 1 (shared by every row).
    pub fn forward_sam_heads(
        &self,
        backbone_features: &Tensor,
        point_inputs: Option<&PointInputs>,
        mask_inputs: Option<&Tensor>,
        high_res: Option<(&Tensor, &Tensor)>,
        multimask_output: bool,
        post: PostProcessing,
    ) -> Result<SamOutputs> {
        let b = backbone_features.dim(0)?;
        let dev = backbone_features.device();
        let (coords, labels) = match point_inputs {
            Some(p) => (p.coords.clone(), p.labels.to_dtype(DType::F32)?),
            None => (
                Tensor::zeros((b, 1, 2), DType::F32, dev)?,
                Tensor::full(-1f32, (b, 1), dev)?,
            ),
        };
        let mask_prompt = match mask_inputs {
            Some(m) => {
                let side = 4 * self.cfg.embedding_size();
                let (_, _, h, w) = m.dims4()?;
                if (h, w) != (side, side) {
                    Some(interpolate::bilinear_antialias(
                        &m.to_dtype(DType::F32)?,
                        (side, side),
                    )?)
                } else {
                    Some(m.clone())
                }
            }
            None => None,
        };
        let mask_prompt = match mask_prompt {
            Some(m) => Some(m.to_dtype(self.dtype())?),
            None => None,
        };
        let (sparse, dense) = self
            .sam_prompt_encoder
            .forward(Some((&coords, &labels)), mask_prompt.as_ref())?;
        let dense_pe = self.sam_prompt_encoder.get_dense_pe();
        let dec = self.sam_mask_decoder.forward_with_stability(
            backbone_features,
            &dense_pe,
            &sparse,
            &dense,
            multimask_output,
            false,
            high_res,
            post.dynamic_multimask_via_stability(),
        )?;
        let mut low_res_multimasks = dec.masks.to_dtype(DType::F32)?;
        let object_score_logits = dec.object_score_logits.to_dtype(DType::F32)?;
        // [B, 1] as 0/1
        let appearing = object_score_logits.gt(0.0)?.to_dtype(DType::F32)?;
        if self.cfg.tracker.pred_obj_scores {
            let keep = appearing
                .unsqueeze(2)?
                .unsqueeze(3)?
                .broadcast_as(low_res_multimasks.shape())?;
            let fill = Tensor::full(NO_OBJ_SCORE as f32, low_res_multimasks.shape(), dev)?;
            low_res_multimasks = keep.ne(0.0)?.where_cond(&low_res_multimasks, &fill)?;
        }
        let s = self.cfg.image_size;
        let high_res_multimasks = interpolate::bilinear(&low_res_multimasks, (s, s))?;
        let ious = dec.iou_pred.to_dtype(DType::F32)?;
        let (low_res_masks, high_res_masks, token) = if multimask_output {
            let best = ious.argmax_keepdim(D::Minus1)?; // [B, 1], first maximum
            let pick = |t: &Tensor| -> Result<Tensor> {
                let (bb, m, h, w) = t.dims4()?;
                let idx = best
                    .reshape((bb, 1, 1, 1))?
                    .broadcast_as((bb, 1, h, w))?
                    .contiguous_fast()?;
                let _ = m;
                // a row slice of a batch is not contiguous; gather needs it to be
                t.contiguous_fast()?.gather(&idx, 1)
            };
            let lo = pick(&low_res_multimasks)?;
            let hi = pick(&high_res_multimasks)?;
            let tokens = &dec.sam_tokens_out; // [B, T, C]
            let token = if tokens.dim(1)? > 1 {
                let c = tokens.dim(2)?;
                let idx = best
                    .reshape((b, 1, 1))?
                    .broadcast_as((b, 1, c))?
                    .contiguous_fast()?;
                tokens.contiguous_fast()?.gather(&idx, 1)?.squeeze(1)?
            } else {
                tokens.narrow(1, 0, 1)?.squeeze(1)?
            };
            (lo, hi, token)
        } else {
            let token = dec.sam_tokens_out.narrow(1, 0, 1)?.squeeze(1)?;
            (
                low_res_multimasks.clone(),
                high_res_multimasks.clone(),
                token,
            )
        };
        let mut obj_ptr = self.obj_ptr_proj.forward(&token)?.to_dtype(DType::F32)?;
        let no_obj_ptr = self.no_obj_ptr.to_dtype(DType::F32)?;
        if self.cfg.tracker.pred_obj_scores {
            let lambda = if self.cfg.tracker.soft_no_obj_ptr {
                candle_nn::ops::sigmoid(&object_score_logits)?
            } else {
                appearing.clone()
            };
            if self.cfg.tracker.fixed_no_obj_ptr {
                obj_ptr = obj_ptr.broadcast_mul(&lambda)?;
            }
            let rest = (1.0 - &lambda)?.broadcast_mul(&no_obj_ptr)?;
            obj_ptr = (obj_ptr + rest)?;
        }
        Ok(SamOutputs {
            low_res_multimasks,
            high_res_multimasks,
            ious,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        })
    }

    /// `_use_mask_as_output`: a binary mask prompt becomes the output directly (logits -10 / +10,
    /// antialiased down to S/4), the object pointer comes from the SAM heads fed the mask.
    /// backbone_features: [B, C, e, e] without memory; mask_inputs: [B, 1, S, S] in {0, 1}.
    pub fn use_mask_as_output(
        &self,
        backbone_features: &Tensor,
        high_res: Option<(&Tensor, &Tensor)>,
        mask_inputs: &Tensor,
        post: PostProcessing,
    ) -> Result<SamOutputs> {
        let (out_scale, out_bias) = (20.0, -10.0);
        let m = mask_inputs.to_dtype(DType::F32)?;
        let high_res_masks = m.affine(out_scale, out_bias)?;
        let (_, _, h, w) = high_res_masks.dims4()?;
        let low_res_masks = interpolate::bilinear_antialias(&high_res_masks, (h / 4, w / 4))?;
        let b = m.dim(0)?;
        let ious = Tensor::ones((b, 1), DType::F32, m.device())?;
        let mut obj_ptr = if self.cfg.tracker.use_obj_ptrs_in_encoder {
            let down = self.mask_downsample.forward(&m.to_dtype(self.dtype())?)?;
            self.forward_sam_heads(backbone_features, None, Some(&down), high_res, false, post)?
                .obj_ptr
        } else {
            Tensor::zeros((b, self.hidden_dim()), DType::F32, m.device())?
        };
        let appearing = m
            .flatten_from(1)?
            .gt(0.0)?
            .to_dtype(DType::F32)?
            .max_keepdim(1)?; // [B, 1]
        let object_score_logits = appearing.affine(out_scale, out_bias)?;
        if self.cfg.tracker.pred_obj_scores {
            if self.cfg.tracker.fixed_no_obj_ptr {
                obj_ptr = obj_ptr.broadcast_mul(&appearing)?;
            }
            let no_obj_ptr = self.no_obj_ptr.to_dtype(DType::F32)?;
            obj_ptr = (obj_ptr + (1.0 - &appearing)?.broadcast_mul(&no_obj_ptr)?)?;
        }
        Ok(SamOutputs {
            low_res_multimasks: low_res_masks.clone(),
            high_res_multimasks: high_res_masks.clone(),
            ious,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        })
    }

    /// [`Self::memory_conditioned_features_ctx`] with the default context.
    pub fn memory_conditioned_features(
        &self,
        feats: &FrameFeatures,
        is_init_cond_frame: bool,
        memories: &[MemoryRef],
        pointers: &[PointerRef],
        num_frames: usize,
    ) -> Result<Tensor> {
        self.memory_conditioned_features_ctx(
            feats,
            is_init_cond_frame,
            memories,
            pointers,
            num_frames,
            &ExecCtx::default(),
        )
    }

    /// `_prepare_memory_conditioned_features` given the memories and pointers the tracker chose,
    /// in a session's context (memory-attention layer fences and profiled stages).
    /// Returns pix_feat_with_mem: [B, C, e, e].
    pub fn memory_conditioned_features_ctx(
        &self,
        feats: &FrameFeatures,
        is_init_cond_frame: bool,
        memories: &[MemoryRef],
        pointers: &[PointerRef],
        num_frames: usize,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        let t = &self.cfg.tracker;
        if t.num_maskmem == 0 {
            return Ok(feats.vision_feat.clone());
        }
        if is_init_cond_frame {
            if !t.directly_add_no_mem_embed {
                candle_core::bail!(
                    "only directly_add_no_mem_embed=true is supported on initial frames"
                )
            }
            let c = feats.vision_feat.dim(1)?;
            let e = self.no_mem_embed.reshape((1, c, 1, 1))?;
            return feats.vision_feat.broadcast_add(&e);
        }
        self.attend_memories(feats, &[(memories, pointers)], num_frames, ctx)
    }

    /// `_prepare_memory_conditioned_features` of several objects on one non-initial frame in one
    /// memory-attention call, objects on the batch dimension: `per_object[i]` holds object i's
    /// memories and pointers ([`MemoryRef`]s and [`PointerRef`]s of batch 1). Every object must
    /// attend to as many memory frames and as many pointers as the others (the tracker groups
    /// objects so); their contents, temporal slots and pointer distances may differ. The frame's
    /// features (batch 1) are shared. Each row equals the one-object call.
    /// -> [N, C, e, e], row i for object i.
    pub fn memory_conditioned_features_batch_ctx(
        &self,
        feats: &FrameFeatures,
        per_object: &[(&[MemoryRef], &[PointerRef])],
        num_frames: usize,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        let n = per_object.len();
        if self.cfg.tracker.num_maskmem == 0 {
            let (_, c, h, w) = feats.vision_feat.dims4()?;
            return feats
                .vision_feat
                .broadcast_as((n, c, h, w))?
                .contiguous_fast();
        }
        self.attend_memories(feats, per_object, num_frames, ctx)
    }

    /// The memory tokens of one object (batch 1): its memory frames (features with the spatial
    /// and temporal position encodings), then its object pointers split into `C / Cm` tokens
    /// each. -> (memory [M, 1, Cm], pos [M, 1, Cm], pointer tokens, spatial memory frames).
    fn memory_tokens(
        &self,
        memories: &[MemoryRef],
        pointers: &[PointerRef],
        num_frames: usize,
        device: &candle_core::Device,
    ) -> Result<(Tensor, Tensor, usize, usize)> {
        let t = &self.cfg.tracker;
        let (c, cm) = (self.hidden_dim(), self.cfg.mem_dim());
        let mut mem_tokens = Vec::new();
        let mut mem_pos = Vec::new();
        for r in memories {
            // [B, N, Cm] -> [N, B, Cm]
            let f = r.memory.features.to_dtype(self.dtype())?.transpose(0, 1)?;
            let idx = t.num_maskmem - r.t_pos - 1;
            let tpos = self.maskmem_tpos_enc.get(idx)?.reshape((1, 1, cm))?;
            let p = r
                .memory
                .pos
                .to_dtype(self.dtype())?
                .transpose(0, 1)?
                .broadcast_add(&tpos)?;
            mem_tokens.push(f);
            mem_pos.push(p);
        }
        let num_spatial_mem = mem_tokens.len();
        let mut num_obj_ptr_tokens = 0;
        if t.use_obj_ptrs_in_encoder && !pointers.is_empty() {
            let ptrs: Vec<Tensor> = pointers.iter().map(|p| p.obj_ptr.clone()).collect();
            let obj_ptrs = Tensor::stack(&ptrs, 0)?.to_dtype(self.dtype())?; // [P, B, C]
            let (np, b) = (obj_ptrs.dim(0)?, obj_ptrs.dim(1)?);
            let positions: Vec<i64> = pointers.iter().map(|p| p.pos).collect();
            let obj_pos = self
                .pointer_pos_enc(&positions, num_frames, device)?
                .to_dtype(self.dtype())?
                .unsqueeze(1)?
                .broadcast_as((np, b, cm))?
                .contiguous_fast()?;
            let (obj_ptrs, obj_pos) = if cm < c {
                let split = c / cm;
                let o = obj_ptrs
                    .reshape((np, b, split, cm))?
                    .permute((0, 2, 1, 3))?
                    .reshape((np * split, b, cm))?;
                let p = obj_pos
                    .unsqueeze(1)?
                    .broadcast_as((np, split, b, cm))?
                    .reshape((np * split, b, cm))?;
                (o, p)
            } else {
                (obj_ptrs, obj_pos)
            };
            num_obj_ptr_tokens = obj_ptrs.dim(0)?;
            mem_tokens.push(obj_ptrs);
            mem_pos.push(obj_pos);
        }
        if mem_tokens.is_empty() {
            candle_core::bail!("a non-initial frame needs at least one memory")
        }
        Ok((
            Tensor::cat(&mem_tokens, 0)?,
            Tensor::cat(&mem_pos, 0)?,
            num_obj_ptr_tokens,
            num_spatial_mem,
        ))
    }

    /// Memory attention of the frame's features to the memory tokens of each object in
    /// `per_object` (one batch row per object). -> [N, C, e, e]
    fn attend_memories(
        &self,
        feats: &FrameFeatures,
        per_object: &[(&[MemoryRef], &[PointerRef])],
        num_frames: usize,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        let tokens = self.memory_tokens_batch(
            per_object,
            num_frames,
            feats.vision_feat.dim(0)?,
            feats.vision_feat.device(),
        )?;
        self.attend_tokens(&feats.vision_feat, &feats.vision_pos, &tokens, ctx)
    }

    /// The memory tokens of the objects in `per_object` side by side on the batch dimension,
    /// for a frame whose features have batch `b` (several objects share a frame of batch 1).
    /// Every object must have the same layout (memory frames, pointers). This is the part of
    /// `_prepare_memory_conditioned_features` that reads host values (temporal slots, pointer
    /// distances); [`Self::attend_tokens`] is a function of tensors only.
    pub fn memory_tokens_batch(
        &self,
        per_object: &[(&[MemoryRef], &[PointerRef])],
        num_frames: usize,
        b: usize,
        dev: &candle_core::Device,
    ) -> Result<MemoryTokens> {
        let n = per_object.len();
        if n == 0 {
            candle_core::bail!("memory attention needs at least one object")
        }
        if b != 1 && n > 1 {
            candle_core::bail!("several objects share the features of one frame (batch 1), got {b}")
        }
        let mut memory = Vec::with_capacity(n);
        let mut memory_pos = Vec::with_capacity(n);
        let mut layout = None;
        for (mems, ptrs) in per_object {
            let (m, p, num_ptr, num_spatial) = self.memory_tokens(mems, ptrs, num_frames, dev)?;
            let this = (m.dim(0)?, num_ptr, num_spatial);
            match layout {
                None => layout = Some(this),
                Some(l) if l != this => candle_core::bail!(
                    "objects batched in one memory attention need the same memory layout: \
                     (tokens, pointer tokens, memory frames) {l:?} vs {this:?}"
                ),
                Some(_) => {}
            }
            memory.push(m);
            memory_pos.push(p);
        }
        let Some((_, num_obj_ptr_tokens, num_spatial_mem)) = layout else {
            candle_core::bail!("memory attention needs at least one object")
        };
        let (memory, pos) = if n == 1 {
            (memory.remove(0), memory_pos.remove(0))
        } else {
            (Tensor::cat(&memory, 1)?, Tensor::cat(&memory_pos, 1)?)
        };
        Ok(MemoryTokens {
            memory,
            pos,
            num_obj_ptr_tokens,
            num_spatial_mem,
        })
    }

    /// Memory attention of a frame's features to prepared memory tokens, one output row per
    /// batch row of the tokens. vision_feat, vision_pos: [B, C, e, e] (B = 1 is shared by every
    /// row) -> [N, C, e, e] with N = the tokens' batch.
    pub fn attend_tokens(
        &self,
        vision_feat: &Tensor,
        vision_pos: &Tensor,
        tokens: &MemoryTokens,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        let (b, c, h, w) = vision_feat.dims4()?;
        let bn = tokens.memory.dim(1)?;
        if bn != b && b != 1 {
            candle_core::bail!("memory tokens of batch {bn} for features of batch {b}")
        }
        // [B, C, h, w] -> [hw, B, C], one row per object
        let curr = vision_feat.flatten_from(2)?.permute((2, 0, 1))?;
        let curr_pos = vision_pos.flatten_from(2)?.permute((2, 0, 1))?;
        let (curr, curr_pos) = if bn == b {
            (curr, curr_pos)
        } else {
            (
                curr.broadcast_as((h * w, bn, c))?,
                curr_pos.broadcast_as((h * w, bn, c))?,
            )
        };
        let out = self.memory_attention.forward_with_frames_ctx(
            &curr,
            &tokens.memory,
            &curr_pos,
            &tokens.pos,
            tokens.num_obj_ptr_tokens,
            Some(tokens.num_spatial_mem),
            ctx,
        )?;
        out.permute((1, 2, 0))?
            .contiguous_fast()?
            .reshape((bn, c, h, w))
    }

    /// Temporal encoding of object pointers at signed distances `positions` from the current
    /// frame: `obj_ptr_tpos_proj(get_1d_sine_pe(pos / (min(num_frames, max_ptrs) - 1)))` for
    /// SAM 2.1, zeros where the variant has no pointer temporal encoding (EdgeTAM). -> [P, Cm]
    pub fn pointer_pos_enc(
        &self,
        positions: &[i64],
        num_frames: usize,
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let t = &self.cfg.tracker;
        let (c, cm) = (self.hidden_dim(), self.cfg.mem_dim());
        let np = positions.len();
        if !t.add_tpos_enc_to_obj_ptrs {
            return Tensor::zeros((np, cm), DType::F32, device);
        }
        let max_ptrs = num_frames.min(t.max_obj_ptrs_in_encoder);
        let t_diff_max = max_ptrs.saturating_sub(1).max(1) as f32;
        let pos: Vec<f32> = positions.iter().map(|&p| p as f32 / t_diff_max).collect();
        let pos = Tensor::from_vec(pos, np, device)?;
        let tpos_dim = if t.proj_tpos_enc_in_obj_ptrs { c } else { cm };
        let pe = get_1d_sine_pe(&pos, tpos_dim, 10000.0)?;
        match &self.obj_ptr_tpos_proj {
            Some(l) => l.forward(&pe.to_dtype(self.dtype())?)?.to_dtype(DType::F32),
            None => Ok(pe),
        }
    }

    /// Round a freshly encoded memory for storage, as the official predictor does (bf16 when the
    /// variant says so; upcast again when it is attended to).
    pub fn store_memory(&self, m: Memory) -> Result<Memory> {
        if self.cfg.tracker.memory_features_bf16 {
            Ok(Memory {
                features: m.features.to_dtype(DType::BF16)?,
                pos: m.pos,
            })
        } else {
            Ok(m)
        }
    }

    /// `_encode_new_memory`: pix_feat [B, C, e, e] (raw backbone feature), pred_masks_high_res
    /// [B, 1, S, S] logits, object_score_logits [B, 1]; a prompted frame's mask is binarized
    /// when `post` says so. Like [`Self::forward_sam_heads`], no execution context: the session
    /// profiles the whole call as one stage.
    pub fn encode_new_memory(
        &self,
        pix_feat: &Tensor,
        pred_masks_high_res: &Tensor,
        object_score_logits: &Tensor,
        is_mask_from_pts: bool,
        post: PostProcessing,
    ) -> Result<Memory> {
        let t = &self.cfg.tracker;
        let m = pred_masks_high_res.to_dtype(DType::F32)?;
        let mask_for_mem = if post.binarize_mask_from_pts_for_mem_enc(t) && is_mask_from_pts {
            m.gt(0.0)?.to_dtype(DType::F32)?
        } else {
            candle_nn::ops::sigmoid(&m)?
        };
        let mask_for_mem = mask_for_mem
            .affine(t.sigmoid_scale_for_mem_enc, t.sigmoid_bias_for_mem_enc)?
            .to_dtype(self.dtype())?;
        let (mut features, pos) = self.memory_encoder.forward(pix_feat, &mask_for_mem, true)?;
        if let Some(e) = &self.no_obj_embed_spatial {
            let absent =
                (1.0 - object_score_logits.gt(0.0)?.to_dtype(DType::F32)?)?.to_dtype(e.dtype())?; // [B, 1]
            let cm = e.dim(1)?;
            let add = absent
                .broadcast_mul(e)?
                .reshape((absent.dim(0)?, cm, 1, 1))?;
            features = features.broadcast_add(&add)?;
        }
        // token-major [B, N, Cm]
        let (features, pos) = match &self.spatial_perceiver {
            Some(p) => p.forward(&features, &pos)?,
            None => (
                features
                    .flatten_from(2)?
                    .transpose(1, 2)?
                    .contiguous_fast()?,
                pos.flatten_from(2)?.transpose(1, 2)?.contiguous_fast()?,
            ),
        };
        Ok(Memory { features, pos })
    }

    /// Run the SAM heads for one frame given its (possibly memory-conditioned) features.
    pub fn high_res_pair<'a>(&self, feats: &'a FrameFeatures) -> Option<(&'a Tensor, &'a Tensor)> {
        feats.high_res_pair()
    }
}
