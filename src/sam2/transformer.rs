//! `TwoWayTransformer` and `TwoWayAttentionBlock` of `sam2/modeling/sam/transformer.py`
//! (architecture.md §3.5 step 3): prompt tokens and image tokens attend to each other.
//!
//! Every attention is [`crate::nn::attention::Attention`]; the LayerNorms use PyTorch's default
//! eps 1e-5 and the MLP is the two-layer ReLU `MLP` of `sam2_utils.py` (keys `mlp.layers.{0,1}`).

use crate::nn::attention::Attention;
use crate::nn::mlp::Mlp;
use crate::nn::norm::layer_norm;
use crate::nn::ContiguousExt;
use crate::nn::ModelOptions;
use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

/// eps of every `nn.LayerNorm` in the two-way transformer (PyTorch default).
const LN_EPS: f64 = 1e-5;

/// Self-attention of the tokens, token-to-image cross-attention, MLP on the tokens, and
/// image-to-token cross-attention, each followed by a LayerNorm.
#[derive(Debug, Clone)]
pub struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    /// Layer 0: self-attention without the query PE and without a residual.
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    pub fn new(
        embedding_dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        attention_downsample_rate: usize,
        skip_first_layer_pe: bool,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c = embedding_dim;
        let rate = attention_downsample_rate;
        Ok(Self {
            self_attn: Attention::new(c, num_heads, 1, None, opts, vb.pp("self_attn"))?,
            norm1: layer_norm(c, LN_EPS, vb.pp("norm1"))?,
            cross_attn_token_to_image: Attention::new(
                c,
                num_heads,
                rate,
                None,
                opts,
                vb.pp("cross_attn_token_to_image"),
            )?,
            norm2: layer_norm(c, LN_EPS, vb.pp("norm2"))?,
            mlp: Mlp::new(c, mlp_dim, c, 2, false, vb.pp("mlp"))?,
            norm3: layer_norm(c, LN_EPS, vb.pp("norm3"))?,
            norm4: layer_norm(c, LN_EPS, vb.pp("norm4"))?,
            cross_attn_image_to_token: Attention::new(
                c,
                num_heads,
                rate,
                None,
                opts,
                vb.pp("cross_attn_image_to_token"),
            )?,
            skip_first_layer_pe,
        })
    }

    /// queries: [B, N, C], keys: [B, HW, C], query_pe: [B, N, C], key_pe: [B, HW, C] ->
    /// (queries [B, N, C], keys [B, HW, C])
    pub fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)?
        } else {
            let q = (queries + query_pe)?;
            (queries + self.self_attn.forward(&q, &q, queries)?)?
        };
        let queries = self.norm1.forward(&queries)?;

        let q = (&queries + query_pe)?;
        let k = (keys + key_pe)?;
        let attn = self.cross_attn_token_to_image.forward(&q, &k, keys)?;
        let queries = self.norm2.forward(&(queries + attn)?)?;

        let mlp_out = self.mlp.forward(&queries)?;
        let queries = self.norm3.forward(&(queries + mlp_out)?)?;

        let q = (&queries + query_pe)?;
        let attn = self.cross_attn_image_to_token.forward(&k, &q, &queries)?;
        let keys = self.norm4.forward(&(keys + attn)?)?;
        Ok((queries, keys))
    }
}

#[derive(Debug, Clone)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    /// Weights under `transformer` of the mask decoder.
    pub fn new(
        depth: usize,
        embedding_dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        attention_downsample_rate: usize,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let layers = (0..depth)
            .map(|i| {
                TwoWayAttentionBlock::new(
                    embedding_dim,
                    num_heads,
                    mlp_dim,
                    attention_downsample_rate,
                    i == 0,
                    opts,
                    vb.pp("layers").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            final_attn_token_to_image: Attention::new(
                embedding_dim,
                num_heads,
                attention_downsample_rate,
                None,
                opts,
                vb.pp("final_attn_token_to_image"),
            )?,
            norm_final_attn: layer_norm(embedding_dim, LN_EPS, vb.pp("norm_final_attn"))?,
        })
    }

    /// image_embedding: [B, C, h, w], image_pe: [B, C, h, w], point_embedding: [B, N, C] ->
    /// (queries [B, N, C], keys [B, h*w, C])
    pub fn forward(
        &self,
        image_embedding: &Tensor,
        image_pe: &Tensor,
        point_embedding: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let image_embedding = image_embedding
            .flatten_from(2)?
            .transpose(1, 2)?
            .contiguous_fast()?;
        let image_pe = image_pe
            .flatten_from(2)?
            .transpose(1, 2)?
            .contiguous_fast()?;
        let mut queries = point_embedding.clone();
        let mut keys = image_embedding;
        for layer in &self.layers {
            (queries, keys) = layer.forward(&queries, &keys, point_embedding, &image_pe)?;
        }
        let q = (&queries + point_embedding)?;
        let k = (&keys + &image_pe)?;
        let attn = self.final_attn_token_to_image.forward(&q, &k, &keys)?;
        let queries = self.norm_final_attn.forward(&(queries + attn)?)?;
        Ok((queries, keys))
    }
}
