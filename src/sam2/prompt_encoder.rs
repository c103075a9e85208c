//! `PromptEncoder` of `sam2/modeling/sam/prompt_encoder.py`, as `SAM2Base` builds it
//! (architecture.md §3.4).
//!
//! Points become random-Fourier position encodings plus a learned per-label embedding; a pad
//! point with label -1 is always appended (the video path never passes boxes, so the official
//! `pad = boxes is None` is always true; box prompts arrive as two points with labels 2 and 3).
//! Mask prompts go through a small conv stack to a dense embedding; without a mask the dense
//! embedding is `no_mask_embed` broadcast over the embedding grid.

use crate::config::ModelConfig;
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::norm::LayerNorm2d;
use crate::nn::position_encoding::PositionEmbeddingRandom;
use crate::nn::ContiguousExt;
use crate::nn::ModelOptions;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

/// Number of learned point embeddings: negative, positive, box top-left, box bottom-right.
const NUM_POINT_EMBEDDINGS: usize = 4;

/// `mask_downscaling`: Conv2x2s2 -> LayerNorm2d -> GELU -> Conv2x2s2 -> LayerNorm2d -> GELU ->
/// Conv1x1 (sequential indices 0, 1, 3, 4, 6; the GELUs at 2 and 5 have no weights).
#[derive(Debug, Clone)]
struct MaskDownscaling {
    conv0: Conv2d,
    norm1: LayerNorm2d,
    conv3: Conv2d,
    norm4: LayerNorm2d,
    conv6: Conv2d,
}

impl MaskDownscaling {
    fn new(
        mask_in_chans: usize,
        embed_dim: usize,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let s2 = Conv2dConfig {
            stride: 2,
            ..Default::default()
        };
        let quarter = mask_in_chans / 4;
        Ok(Self {
            conv0: conv2d(1, quarter, 2, s2, opts, vb.pp("0"))?,
            norm1: LayerNorm2d::new(quarter, 1e-6, vb.pp("1"))?,
            conv3: conv2d(quarter, mask_in_chans, 2, s2, opts, vb.pp("3"))?,
            norm4: LayerNorm2d::new(mask_in_chans, 1e-6, vb.pp("4"))?,
            conv6: conv2d(
                mask_in_chans,
                embed_dim,
                1,
                Conv2dConfig::default(),
                opts,
                vb.pp("6"),
            )?,
        })
    }
}

impl Module for MaskDownscaling {
    /// x: [B, 1, 4e, 4e] -> [B, C, e, e]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm1.forward_gelu(&self.conv0.forward(x)?)?;
        let x = self.norm4.forward_gelu(&self.conv3.forward(&x)?)?;
        self.conv6.forward(&x)
    }
}

#[derive(Debug, Clone)]
pub struct PromptEncoder {
    embed_dim: usize,
    /// Side of the square embedding grid (e).
    embedding_size: usize,
    /// Side of the square network input (S), the frame point coordinates are given in.
    input_size: usize,
    pe_layer: PositionEmbeddingRandom,
    /// `point_embeddings.{0..3}.weight`, each [1, C].
    point_embeddings: Vec<Tensor>,
    /// [1, C]
    not_a_point_embed: Tensor,
    /// [1, C]
    no_mask_embed: Tensor,
    mask_downscaling: MaskDownscaling,
    /// `get_dense_pe()`: [1, C, e, e], computed once at construction.
    dense_pe: Tensor,
}

impl PromptEncoder {
    /// Weights under `sam_prompt_encoder` (pass `vb.pp("sam_prompt_encoder")`).
    pub fn new(cfg: &ModelConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let embed_dim = cfg.hidden_dim();
        let embedding_size = cfg.embedding_size();
        let mask_in_chans = cfg.prompt_encoder.mask_in_chans;
        if !embed_dim.is_multiple_of(2) {
            candle_core::bail!("prompt encoder: embed_dim {embed_dim} must be even");
        }
        if !mask_in_chans.is_multiple_of(4) || mask_in_chans == 0 {
            candle_core::bail!(
                "prompt encoder: mask_in_chans {mask_in_chans} must be a positive multiple of 4"
            );
        }
        let pe_layer = PositionEmbeddingRandom::new(embed_dim / 2, vb.pp("pe_layer"))?;
        let point_embeddings = (0..NUM_POINT_EMBEDDINGS)
            .map(|i| {
                vb.pp("point_embeddings")
                    .pp(i)
                    .get((1, embed_dim), "weight")
            })
            .collect::<Result<Vec<_>>>()?;
        let not_a_point_embed = vb.pp("not_a_point_embed").get((1, embed_dim), "weight")?;
        let no_mask_embed = vb.pp("no_mask_embed").get((1, embed_dim), "weight")?;
        let mask_downscaling =
            MaskDownscaling::new(mask_in_chans, embed_dim, opts, vb.pp("mask_downscaling"))?;
        let dense_pe = pe_layer
            .grid(embedding_size, embedding_size, vb.device())?
            .unsqueeze(0)?
            .to_dtype(vb.dtype())?;
        Ok(Self {
            embed_dim,
            embedding_size,
            input_size: cfg.image_size,
            pe_layer,
            point_embeddings,
            not_a_point_embed,
            no_mask_embed,
            mask_downscaling,
            dense_pe,
        })
    }

    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// Side of the expected mask prompt (`4 * e`).
    pub fn mask_input_size(&self) -> usize {
        4 * self.embedding_size
    }

    /// The random-Fourier encoding of the embedding grid's pixel centres: [1, C, e, e].
    pub fn get_dense_pe(&self) -> Tensor {
        self.dense_pe.clone()
    }

    /// `_embed_points` with `pad = true`.
    ///
    /// coords: [B, N, 2] (x, y) pixels in the S x S input frame, labels: [B, N] (any numeric
    /// dtype; -1 = not a point, 0 = negative, 1 = positive, 2/3 = box corners) -> [B, N+1, C]
    pub fn embed_points(&self, coords: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (b, n, two) = coords.dims3()?;
        let (bl, nl) = labels.dims2()?;
        if two != 2 || bl != b || nl != n {
            candle_core::bail!(
                "prompt encoder: points {:?} and labels {:?} do not match ([B,N,2] and [B,N])",
                coords.dims(),
                labels.dims()
            );
        }
        let dev = coords.device();
        let coords = (coords.to_dtype(DType::F32)? + 0.5)?;
        let coords = Tensor::cat(&[coords, Tensor::zeros((b, 1, 2), DType::F32, dev)?], 1)?;
        let labels = labels.to_dtype(DType::F32)?;
        let labels = Tensor::cat(&[labels, Tensor::full(-1f32, (b, 1), dev)?], 1)?;

        let dtype = self.not_a_point_embed.dtype();
        let c = self.embed_dim;
        let shape = (b, n + 1, c);
        let pe = self
            .pe_layer
            .forward_with_coords(&coords, (self.input_size, self.input_size))?
            .to_dtype(dtype)?;
        let is_label = |v: f32| -> Result<Tensor> {
            labels
                .eq(&Tensor::full(v, (b, n + 1), dev)?)?
                .unsqueeze(2)?
                .broadcast_as(shape)
        };
        // The not-a-point embedding replaces the encoding, it is not added to it.
        let not_a_point = self.not_a_point_embed.unsqueeze(0)?.broadcast_as(shape)?;
        let mut emb = is_label(-1.0)?.where_cond(&not_a_point, &pe)?;
        for (i, w) in self.point_embeddings.iter().enumerate() {
            let added = emb.broadcast_add(&w.unsqueeze(0)?)?;
            emb = is_label(i as f32)?.where_cond(&added, &emb)?;
        }
        Ok(emb)
    }

    /// `_embed_masks`: mask logits [B, 1, 4e, 4e] -> [B, C, e, e]
    pub fn embed_masks(&self, masks: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = masks.dims4()?;
        let s = self.mask_input_size();
        if c != 1 || h != s || w != s {
            candle_core::bail!(
                "prompt encoder: mask prompt must be [B,1,{s},{s}], got {:?}",
                masks.dims()
            );
        }
        self.mask_downscaling.forward(masks)
    }

    /// Sparse and dense prompt embeddings.
    ///
    /// points: ([B, N, 2] pixel coords in the S x S input frame, [B, N] labels),
    /// masks: [B, 1, 4e, 4e] mask logits ->
    /// (sparse [B, N+1, C] (or [B, 0, C] without points), dense [B, C, e, e])
    pub fn forward(
        &self,
        points: Option<(&Tensor, &Tensor)>,
        masks: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let bs = match (points, masks) {
            (Some((c, _)), _) => c.dim(0)?,
            (None, Some(m)) => m.dim(0)?,
            (None, None) => 1,
        };
        let dtype = self.no_mask_embed.dtype();
        let dev = self.no_mask_embed.device();
        let sparse = match points {
            Some((coords, labels)) => self.embed_points(coords, labels)?,
            None => Tensor::zeros((bs, 0, self.embed_dim), dtype, dev)?,
        };
        let dense = match masks {
            Some(m) => {
                if m.dim(0)? != bs {
                    candle_core::bail!(
                        "prompt encoder: {} mask prompts for a batch of {bs} point prompts",
                        m.dim(0)?
                    );
                }
                self.embed_masks(m)?
            }
            None => {
                let e = self.embedding_size;
                self.no_mask_embed
                    .reshape((1, self.embed_dim, 1, 1))?
                    .broadcast_as((bs, self.embed_dim, e, e))?
                    .contiguous_fast()?
            }
        };
        Ok((sparse, dense))
    }
}
