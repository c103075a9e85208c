//! `MaskDecoder` of `sam2/modeling/sam/mask_decoder.py`, as `SAM2Base` and the video predictor
//! build it (architecture.md §3.5): output tokens plus prompt tokens run through the two-way
//! transformer; the image tokens are upscaled 4x (fused with the high-resolution FPN levels) and
//! each mask token's hypernetwork MLP turns them into a mask; the IoU and object-score tokens go
//! through their own MLP heads.
//!
//! The video predictor's builder sets `dynamic_multimask_via_stability` unless it is asked not to
//! post-process (`apply_postprocessing=False`), and runs in eval mode, so a single-mask request
//! falls back to the best multimask output when mask 0 is unstable; a session chooses per call
//! ([`MaskDecoder::forward_with_stability`]).

use crate::config::ModelConfig;
use crate::nn::conv::{conv2d, conv_transpose2d, Conv2d, ConvTranspose2d};
use crate::nn::linear::Linear;
use crate::nn::mlp::Mlp;
use crate::nn::norm::LayerNorm2d;
use crate::nn::ContiguousExt;
use crate::nn::ModelOptions;
use crate::sam2::transformer::TwoWayTransformer;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

/// Object-score head: a 3-layer MLP (`pred_obj_scores_mlp`) or a single Linear.
#[derive(Debug, Clone)]
enum ObjScoreHead {
    Mlp(Mlp),
    Linear(Linear),
}

impl Module for ObjScoreHead {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Mlp(m) => m.forward(x),
            Self::Linear(l) => l.forward(x),
        }
    }
}

/// Outputs of [`MaskDecoder::predict_masks`] (every mask token, no selection).
#[derive(Debug, Clone)]
pub struct PredictedMasks {
    /// [B, T, 4e, 4e] low-resolution mask logits, T = num_multimask_outputs + 1.
    pub masks: Tensor,
    /// [B, T]
    pub iou_pred: Tensor,
    /// [B, T, C]
    pub mask_tokens_out: Tensor,
    /// [B, 1]
    pub object_score_logits: Tensor,
}

/// Outputs of [`MaskDecoder::forward`] after mask selection.
#[derive(Debug, Clone)]
pub struct MaskDecoderOutput {
    /// [B, M, 4e, 4e] with M = 3 (multimask) or 1.
    pub masks: Tensor,
    /// [B, M]
    pub iou_pred: Tensor,
    /// [B, 3, C] (multimask with `use_multimask_token_for_obj_ptr`) or [B, 1, C].
    pub sam_tokens_out: Tensor,
    /// [B, 1]
    pub object_score_logits: Tensor,
}

#[derive(Debug, Clone)]
pub struct MaskDecoder {
    transformer_dim: usize,
    num_mask_tokens: usize,
    transformer: TwoWayTransformer,
    /// [1, C]
    iou_token: Tensor,
    /// [T, C]
    mask_tokens: Tensor,
    /// [1, C] when `pred_obj_scores`.
    obj_score_token: Option<Tensor>,
    upscale_conv1: ConvTranspose2d,
    upscale_norm: LayerNorm2d,
    upscale_conv2: ConvTranspose2d,
    conv_s0: Option<Conv2d>,
    conv_s1: Option<Conv2d>,
    output_hypernetworks_mlps: Vec<Mlp>,
    iou_prediction_head: Mlp,
    pred_obj_score_head: Option<ObjScoreHead>,
    use_multimask_token_for_obj_ptr: bool,
    /// Set by the video predictor's builder (`sam_mask_decoder_extra_args`) when it applies
    /// post-processing, its default; [`Self::forward`] uses it, [`Self::forward_with_stability`]
    /// takes the choice per call (a session's [`crate::config::PostProcessing`]).
    dynamic_multimask_via_stability: bool,
    dynamic_multimask_stability_delta: f64,
    dynamic_multimask_stability_thresh: f64,
}

impl MaskDecoder {
    /// Weights under `sam_mask_decoder` (pass `vb.pp("sam_mask_decoder")`).
    pub fn new(cfg: &ModelConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let c = cfg.hidden_dim();
        let md = &cfg.mask_decoder;
        let tr = &cfg.tracker;
        if !c.is_multiple_of(8) {
            candle_core::bail!("mask decoder: transformer_dim {c} must be a multiple of 8");
        }
        let num_mask_tokens = md.num_multimask_outputs + 1;
        let transformer = TwoWayTransformer::new(
            md.transformer_depth,
            c,
            md.transformer_num_heads,
            md.transformer_mlp_dim,
            md.attention_downsample_rate,
            opts,
            vb.pp("transformer"),
        )?;
        let iou_token = vb.pp("iou_token").get((1, c), "weight")?;
        let mask_tokens = vb.pp("mask_tokens").get((num_mask_tokens, c), "weight")?;
        let obj_score_token = if tr.pred_obj_scores {
            Some(vb.pp("obj_score_token").get((1, c), "weight")?)
        } else {
            None
        };
        let up = vb.pp("output_upscaling");
        let upscale_conv1 = conv_transpose2d(c, c / 4, 2, 2, up.pp("0"))?;
        let upscale_norm = LayerNorm2d::new(c / 4, 1e-6, up.pp("1"))?;
        let upscale_conv2 = conv_transpose2d(c / 4, c / 8, 2, 2, up.pp("3"))?;
        let (conv_s0, conv_s1) = if tr.use_high_res_features_in_sam {
            let k1 = Conv2dConfig::default();
            (
                Some(conv2d(c, c / 8, 1, k1, opts, vb.pp("conv_s0"))?),
                Some(conv2d(c, c / 4, 1, k1, opts, vb.pp("conv_s1"))?),
            )
        } else {
            (None, None)
        };
        let output_hypernetworks_mlps = (0..num_mask_tokens)
            .map(|i| {
                Mlp::new(
                    c,
                    c,
                    c / 8,
                    3,
                    false,
                    vb.pp("output_hypernetworks_mlps").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let iou_prediction_head = Mlp::new(
            c,
            md.iou_head_hidden_dim,
            num_mask_tokens,
            md.iou_head_depth,
            tr.iou_prediction_use_sigmoid,
            vb.pp("iou_prediction_head"),
        )?;
        let pred_obj_score_head = match (tr.pred_obj_scores, tr.pred_obj_scores_mlp) {
            (false, _) => None,
            (true, true) => Some(ObjScoreHead::Mlp(Mlp::new(
                c,
                c,
                1,
                3,
                false,
                vb.pp("pred_obj_score_head"),
            )?)),
            (true, false) => Some(ObjScoreHead::Linear(crate::nn::linear::linear(
                c,
                1,
                vb.pp("pred_obj_score_head"),
            )?)),
        };
        Ok(Self {
            transformer_dim: c,
            num_mask_tokens,
            transformer,
            iou_token,
            mask_tokens,
            obj_score_token,
            upscale_conv1,
            upscale_norm,
            upscale_conv2,
            conv_s0,
            conv_s1,
            output_hypernetworks_mlps,
            iou_prediction_head,
            pred_obj_score_head,
            use_multimask_token_for_obj_ptr: tr.use_multimask_token_for_obj_ptr,
            dynamic_multimask_via_stability: true,
            dynamic_multimask_stability_delta: md.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh: md.dynamic_multimask_stability_thresh,
        })
    }

    /// `conv_s0`, applied by `SAM2Base.forward_image` to FPN level 0: [B, C, 4e, 4e] ->
    /// [B, C/8, 4e, 4e]. An error when the variant has no high-resolution features.
    pub fn conv_s0(&self, x: &Tensor) -> Result<Tensor> {
        match &self.conv_s0 {
            Some(c) => c.forward(x),
            None => candle_core::bail!(
                "mask decoder has no conv_s0 (use_high_res_features_in_sam is off)"
            ),
        }
    }

    /// `conv_s1`, applied to FPN level 1: [B, C, 2e, 2e] -> [B, C/4, 2e, 2e].
    pub fn conv_s1(&self, x: &Tensor) -> Result<Tensor> {
        match &self.conv_s1 {
            Some(c) => c.forward(x),
            None => candle_core::bail!(
                "mask decoder has no conv_s1 (use_high_res_features_in_sam is off)"
            ),
        }
    }

    /// Every mask token's output, without selection.
    ///
    /// image_embeddings: [Bi, C, e, e], image_pe: [1, C, e, e], sparse: [B, N, C],
    /// dense: [B, C, e, e], high_res_features: ([B, C/8, 4e, 4e], [B, C/4, 2e, 2e]).
    /// With `repeat_image` the single image (Bi = 1) is repeated for the B prompt sets; otherwise
    /// Bi must be B.
    pub fn predict_masks(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse_prompt_embeddings: &Tensor,
        dense_prompt_embeddings: &Tensor,
        repeat_image: bool,
        high_res_features: Option<(&Tensor, &Tensor)>,
    ) -> Result<PredictedMasks> {
        let c = self.transformer_dim;
        let (b, _, sc) = sparse_prompt_embeddings.dims3()?;
        if sc != c {
            candle_core::bail!("mask decoder: sparse prompts have {sc} channels, expected {c}");
        }
        // Output tokens: [obj_score?, iou, mask x T], then the prompt tokens.
        let mut out_tokens = Vec::with_capacity(3);
        let s = match &self.obj_score_token {
            Some(t) => {
                out_tokens.push(t.clone());
                1
            }
            None => 0,
        };
        out_tokens.push(self.iou_token.clone());
        out_tokens.push(self.mask_tokens.clone());
        let out_tokens = Tensor::cat(&out_tokens, 0)?;
        let n_out = out_tokens.dim(0)?;
        let out_tokens = out_tokens.unsqueeze(0)?.broadcast_as((b, n_out, c))?;
        let tokens = if sparse_prompt_embeddings.dim(1)? == 0 {
            out_tokens.contiguous_fast()?
        } else {
            let sparse = sparse_prompt_embeddings.to_dtype(out_tokens.dtype())?;
            Tensor::cat(&[&out_tokens.contiguous_fast()?, &sparse], 1)?
        };

        let (bi, ci, h, w) = image_embeddings.dims4()?;
        if ci != c {
            candle_core::bail!("mask decoder: image embeddings have {ci} channels, expected {c}");
        }
        let src = if repeat_image {
            // The official code repeats a single image once per prompt set.
            if bi != 1 {
                candle_core::bail!(
                    "mask decoder: repeat_image needs one image embedding, got {bi}"
                );
            }
            image_embeddings
                .broadcast_as((b, c, h, w))?
                .contiguous_fast()?
        } else {
            if bi != b {
                candle_core::bail!("mask decoder: {bi} image embeddings for {b} prompt sets");
            }
            image_embeddings.clone()
        };
        let src = src.broadcast_add(dense_prompt_embeddings)?;
        let bs = b;
        if image_pe.dim(0)? != 1 {
            candle_core::bail!("mask decoder: image_pe must have batch 1 (from get_dense_pe())");
        }
        let pos_src = image_pe.broadcast_as((bs, c, h, w))?;

        let (hs, src) = self.transformer.forward(&src, &pos_src, &tokens)?;
        let iou_token_out = hs.narrow(1, s, 1)?.squeeze(1)?;
        let mask_tokens_out = hs.narrow(1, s + 1, self.num_mask_tokens)?;

        let src = src.transpose(1, 2)?.reshape((bs, c, h, w))?;
        let up = self.upscale_conv1.forward(&src)?;
        let up = match high_res_features {
            Some((_, feat_s1)) => up.broadcast_add(feat_s1)?,
            None => up,
        };
        let up = self.upscale_norm.forward_gelu(&up)?;
        let up = self.upscale_conv2.forward(&up)?;
        let up = match high_res_features {
            Some((feat_s0, _)) => up.broadcast_add(feat_s0)?,
            None => up,
        };
        let up = up.gelu_erf()?;

        let hyper_in = self
            .output_hypernetworks_mlps
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(&mask_tokens_out.narrow(1, i, 1)?))
            .collect::<Result<Vec<_>>>()?;
        let hyper_in = Tensor::cat(&hyper_in, 1)?;
        let (_, cu, hu, wu) = up.dims4()?;
        crate::nn::flops::add_matmul(
            crate::nn::flops::Kind::Matmul,
            bs,
            self.num_mask_tokens,
            cu,
            hu * wu,
        );
        let masks = hyper_in.matmul(&up.reshape((bs, cu, hu * wu))?)?.reshape((
            bs,
            self.num_mask_tokens,
            hu,
            wu,
        ))?;

        let iou_pred = self.iou_prediction_head.forward(&iou_token_out)?;
        let object_score_logits = match &self.pred_obj_score_head {
            Some(head) => head.forward(&hs.narrow(1, 0, 1)?.squeeze(1)?)?,
            None => Tensor::full(10f32, (bs, 1), hs.device())?.to_dtype(iou_pred.dtype())?,
        };
        Ok(PredictedMasks {
            masks,
            iou_pred,
            mask_tokens_out,
            object_score_logits,
        })
    }

    /// Predict masks and select the output (`MaskDecoder.forward` in eval mode, as the video
    /// predictor's builder makes it by default: dynamic multimask via stability on).
    ///
    /// Same inputs as [`Self::predict_masks`]. With `multimask_output` the outputs of tokens
    /// 1..T are returned; otherwise token 0, replaced per batch row by the highest-IoU multimask
    /// output when its stability score is below the threshold.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse_prompt_embeddings: &Tensor,
        dense_prompt_embeddings: &Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: Option<(&Tensor, &Tensor)>,
    ) -> Result<MaskDecoderOutput> {
        self.forward_with_stability(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            multimask_output,
            repeat_image,
            high_res_features,
            self.dynamic_multimask_via_stability,
        )
    }

    /// [`Self::forward`] with the dynamic multimask fallback chosen by the caller (off: a
    /// single-mask request always returns token 0, as a predictor built with
    /// `apply_postprocessing=False` does).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with_stability(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse_prompt_embeddings: &Tensor,
        dense_prompt_embeddings: &Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: Option<(&Tensor, &Tensor)>,
        dynamic_stability: bool,
    ) -> Result<MaskDecoderOutput> {
        let p = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )?;
        let t = self.num_mask_tokens;
        let (masks, iou_pred) = if multimask_output {
            (
                p.masks.narrow(1, 1, t - 1)?,
                p.iou_pred.narrow(1, 1, t - 1)?,
            )
        } else if dynamic_stability {
            dynamic_multimask_via_stability(
                &p.masks,
                &p.iou_pred,
                self.dynamic_multimask_stability_delta,
                self.dynamic_multimask_stability_thresh,
            )?
        } else {
            (p.masks.narrow(1, 0, 1)?, p.iou_pred.narrow(1, 0, 1)?)
        };
        let sam_tokens_out = if multimask_output && self.use_multimask_token_for_obj_ptr {
            p.mask_tokens_out.narrow(1, 1, t - 1)?
        } else {
            p.mask_tokens_out.narrow(1, 0, 1)?
        };
        Ok(MaskDecoderOutput {
            masks,
            iou_pred,
            sam_tokens_out,
            object_score_logits: p.object_score_logits,
        })
    }
}

/// Stability of mask logits: `#(m > delta) / #(m > -delta)` over the spatial axes, 1 where the
/// denominator is 0. masks: [B, M, H, W] -> [B, M] (f32).
pub fn stability_scores(masks: &Tensor, delta: f64) -> Result<Tensor> {
    let m = masks.flatten_from(2)?.to_dtype(DType::F32)?;
    let area_i = m.gt(delta)?.to_dtype(DType::F32)?.sum(2)?;
    let area_u = m.gt(-delta)?.to_dtype(DType::F32)?.sum(2)?;
    let ratio = (&area_i / &area_u)?;
    let ones = Tensor::ones_like(&ratio)?;
    area_u.gt(0.0)?.where_cond(&ratio, &ones)
}

/// `_dynamic_multimask_via_stability`: keep mask 0 where its stability is `>= thresh`, otherwise
/// take the multimask output (tokens 1..T) with the highest predicted IoU (the first one on ties,
/// like `torch.argmax`). All on the tensors' device, no host round trip.
///
/// masks: [B, T, H, W], iou: [B, T] -> ([B, 1, H, W], [B, 1])
pub fn dynamic_multimask_via_stability(
    masks: &Tensor,
    iou: &Tensor,
    delta: f64,
    thresh: f64,
) -> Result<(Tensor, Tensor)> {
    let (b, t, h, w) = masks.dims4()?;
    if t < 2 {
        candle_core::bail!("dynamic multimask selection needs at least 2 mask tokens, got {t}");
    }
    let mask_shape = (b, 1, h, w);
    // First maximum of the multimask IoUs, by a strict-greater scan over the candidates.
    let mut best_mask = masks.narrow(1, 1, 1)?;
    let mut best_iou = iou.narrow(1, 1, 1)?;
    for j in 2..t {
        let cand_iou = iou.narrow(1, j, 1)?;
        let better = cand_iou.gt(&best_iou)?;
        let better_m = better.reshape((b, 1, 1, 1))?.broadcast_as(mask_shape)?;
        best_mask = better_m.where_cond(&masks.narrow(1, j, 1)?, &best_mask)?;
        best_iou = better.where_cond(&cand_iou, &best_iou)?;
    }
    let single_mask = masks.narrow(1, 0, 1)?;
    let single_iou = iou.narrow(1, 0, 1)?;
    let stable = stability_scores(&single_mask, delta)?.ge(thresh)?; // [B, 1]
    let stable_m = stable.reshape((b, 1, 1, 1))?.broadcast_as(mask_shape)?;
    let mask_out = stable_m.where_cond(&single_mask, &best_mask)?;
    let iou_out = stable.where_cond(&single_iou, &best_iou)?;
    Ok((mask_out, iou_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Three candidate masks with distinct constant values so a selection is identifiable.
    fn candidates(m0: &[f32], ious: &[f32]) -> Result<(Tensor, Tensor)> {
        let dev = Device::Cpu;
        let hw = m0.len();
        let mut data = m0.to_vec();
        for k in 1..ious.len() {
            data.extend(std::iter::repeat_n(10.0 * k as f32, hw));
        }
        let masks = Tensor::from_vec(data, (1, ious.len(), 1, hw), &dev)?;
        let iou = Tensor::from_vec(ious.to_vec(), (1, ious.len()), &dev)?;
        Ok((masks, iou))
    }

    #[test]
    fn stability_counts_match_hand_computation() -> Result<()> {
        // > 0.05: {0.06, 1.0} = 2 (0.05 itself is not counted); > -0.05: {0.0, 0.06, 1.0, -0.04,
        // 0.05} = 5.
        let m = Tensor::new(&[[[[0.0f32, 0.06, 1.0, -0.04, -0.06, 0.05]]]], &Device::Cpu)?;
        let s = stability_scores(&m, 0.05)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(s, vec![2.0f32 / 5.0]);
        // Empty union -> 1.
        let m = Tensor::new(&[[[[-1.0f32, -2.0]]]], &Device::Cpu)?;
        assert_eq!(
            stability_scores(&m, 0.05)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            vec![1.0]
        );
        Ok(())
    }

    #[test]
    fn stable_single_mask_is_kept() -> Result<()> {
        let (masks, iou) = candidates(&[5.0, 5.0, -5.0, -5.0], &[0.1, 0.9, 0.5, 0.7])?;
        let (m, i) = dynamic_multimask_via_stability(&masks, &iou, 0.05, 0.98)?;
        assert_eq!(
            m.flatten_all()?.to_vec1::<f32>()?,
            vec![5.0, 5.0, -5.0, -5.0]
        );
        assert_eq!(i.flatten_all()?.to_vec1::<f32>()?, vec![0.1]);
        Ok(())
    }

    #[test]
    fn unstable_single_mask_falls_back_to_best_iou() -> Result<()> {
        // Stability 1/2 < 0.98; best multimask IoU is token 3.
        let (masks, iou) = candidates(&[5.0, 0.0, -5.0, -5.0], &[0.99, 0.2, 0.5, 0.7])?;
        let (m, i) = dynamic_multimask_via_stability(&masks, &iou, 0.05, 0.98)?;
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![30.0; 4]);
        assert_eq!(i.flatten_all()?.to_vec1::<f32>()?, vec![0.7]);
        // Token 2 best.
        let (masks, iou) = candidates(&[5.0, 0.0, -5.0, -5.0], &[0.99, 0.2, 0.8, 0.7])?;
        let (m, _) = dynamic_multimask_via_stability(&masks, &iou, 0.05, 0.98)?;
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![20.0; 4]);
        Ok(())
    }

    #[test]
    fn iou_ties_pick_the_first_maximum() -> Result<()> {
        let (masks, iou) = candidates(&[0.0, 0.0], &[0.0, 0.5, 0.7, 0.7])?;
        let (m, i) = dynamic_multimask_via_stability(&masks, &iou, 0.05, 0.98)?;
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![20.0; 2]);
        assert_eq!(i.flatten_all()?.to_vec1::<f32>()?, vec![0.7]);
        let (masks, iou) = candidates(&[0.0, 0.0], &[0.0, 0.6, 0.6, 0.6])?;
        let (m, _) = dynamic_multimask_via_stability(&masks, &iou, 0.05, 0.98)?;
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![10.0; 2]);
        Ok(())
    }

    #[test]
    fn selection_is_per_batch_row() -> Result<()> {
        let dev = Device::Cpu;
        // Row 0 stable (all 5), row 1 unstable (half 0): row 1 takes token 1 (best IoU).
        let row0 = [5f32, 5.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        let row1 = [5f32, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        let masks = Tensor::from_vec([row0, row1].concat(), (2, 4, 1, 2), &dev)?;
        let iou = Tensor::new(&[[0.1f32, 0.9, 0.2, 0.3], [0.1, 0.9, 0.2, 0.3]], &dev)?;
        let (m, i) = dynamic_multimask_via_stability(&masks, &iou, 0.05, 0.98)?;
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![5.0, 5.0, 1.0, 1.0]);
        assert_eq!(i.flatten_all()?.to_vec1::<f32>()?, vec![0.1, 0.9]);
        Ok(())
    }
}
