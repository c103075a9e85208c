//! `sam2/modeling/memory_attention.py` and the RoPE attention of `sam/transformer.py`: conditions
//! the current frame's features on the memory bank (past memories and object pointers).
//!
//! Weight keys under `memory_attention`: `layers.{i}.{self_attn,cross_attn_image}.{q,k,v,out}_proj`,
//! `layers.{i}.{linear1,linear2,norm1,norm2,norm3}`, `norm`.
//!
//! EdgeTAM uses the same module with `RoPEAttentionv2` for cross-attention
//! ([`RopeKind::RopeV2`]); its keys are laid out per memory frame, so its forward needs the
//! number of memory frames ([`MemoryAttention::forward_with_frames`]).

use crate::config::{FencePoint, MemoryAttentionConfig, RopeAttentionConfig, RopeKind};
use crate::exec::ExecCtx;
use crate::nn::attention::Attention;
use crate::nn::linear::{Activation, Linear};
use crate::nn::norm::layer_norm;
use crate::nn::rope::{self, AxialRope};
use crate::nn::{ContiguousExt, ModelOptions};
use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use std::sync::Arc;

/// Default number of query rows per attention block: bounds the score matrix to
/// `1024 x Nk` per head (about 115 MB in f32 for 28k memory tokens) without changing the result.
pub const DEFAULT_QUERY_CHUNK: usize = 1024;

/// Epsilon of the `nn.LayerNorm`s of memory attention (PyTorch default).
const LN_EPS: f64 = 1e-5;

/// How the rotary encoding is laid out over queries and keys.
#[derive(Debug, Clone, Copy)]
enum RopeLayout {
    /// `RoPEAttention`: one grid (`feat_sizes`, or the square grid of the query count when that
    /// differs); keys use the same table, tiled per memory frame when `repeat_k`.
    V1 {
        feat_sizes: [usize; 2],
        repeat_k: bool,
    },
    /// `RoPEAttentionv2`: queries on `q_sizes`; each memory frame's trailing `k_sizes` tokens on
    /// the key grid, its leading tokens unrotated.
    V2 {
        q_sizes: [usize; 2],
        k_sizes: [usize; 2],
    },
}

/// Rotary-table owners shared between the attentions of one module, keyed by (head width, theta).
#[derive(Debug, Default)]
pub struct RopeCache {
    ropes: Vec<Arc<AxialRope>>,
}

impl RopeCache {
    /// The shared [`AxialRope`] of this head width and theta, created on first use.
    pub fn get(&mut self, dim: usize, theta: f64) -> Result<Arc<AxialRope>> {
        if let Some(r) = self
            .ropes
            .iter()
            .find(|r| r.dim() == dim && r.theta() == theta)
        {
            return Ok(r.clone());
        }
        let r = Arc::new(AxialRope::new(dim, theta)?);
        self.ropes.push(r.clone());
        Ok(r)
    }
}

/// `RoPEAttention` / `RoPEAttentionv2`: the SAM `Attention` with the rotary encoding applied
/// to the projected heads before [`crate::nn::attention::sdpa`].
#[derive(Debug)]
pub struct RoPEAttention {
    attn: Attention,
    rope: Arc<AxialRope>,
    layout: RopeLayout,
}

impl RoPEAttention {
    /// Weights under `q_proj`, `k_proj`, `v_proj`, `out_proj` of `vb`.
    pub fn new(
        embedding_dim: usize,
        cfg: &RopeAttentionConfig,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::new_shared(embedding_dim, cfg, &mut RopeCache::default(), opts, vb)
    }

    /// As [`Self::new`], taking the rotary tables from `cache` so that every attention of a module
    /// with the same head width and theta holds one copy of each table per device.
    pub fn new_shared(
        embedding_dim: usize,
        cfg: &RopeAttentionConfig,
        cache: &mut RopeCache,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let attn = Attention::new(
            embedding_dim,
            cfg.num_heads,
            cfg.downsample_rate,
            cfg.kv_in_dim,
            opts,
            vb,
        )?
        .with_chunk(Some(DEFAULT_QUERY_CHUNK));
        let rope = cache.get(attn.internal_dim / attn.num_heads, cfg.rope_theta)?;
        let layout = match cfg.kind {
            RopeKind::Rope => {
                let Some(feat_sizes) = cfg.feat_sizes else {
                    bail!("RoPEAttention needs feat_sizes");
                };
                RopeLayout::V1 {
                    feat_sizes,
                    repeat_k: cfg.rope_k_repeat,
                }
            }
            RopeKind::RopeV2 => {
                let (Some(q_sizes), Some(k_sizes)) = (cfg.q_sizes, cfg.k_sizes) else {
                    bail!("RoPEAttentionv2 needs q_sizes and k_sizes");
                };
                RopeLayout::V2 { q_sizes, k_sizes }
            }
        };
        Ok(Self { attn, rope, layout })
    }

    /// Query rows per attention block (None: all at once).
    pub fn set_chunk(&mut self, chunk: Option<usize>) {
        self.attn.chunk = chunk;
    }

    /// q: [B, Nq, C], k/v: [B, Nk, Ckv] -> [B, Nq, C]. The last `num_k_exclude_rope` keys (object
    /// pointers) are not rotated. `num_spatial_mem` (memory frames in k) is required by the v2
    /// layout and ignored by v1. Stages are profiled in `ctx`.
    pub fn forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        num_k_exclude_rope: usize,
        num_spatial_mem: Option<usize>,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        let dev = q.device();
        let (q, k, v) = ctx.stage("mem_attn.project_qkv", dev, || {
            self.attn.project_qkv(q, k, v)
        })?;
        let (q, k) = ctx.stage("mem_attn.rope", dev, || {
            self.apply_rope(&q, &k, num_k_exclude_rope, num_spatial_mem)
        })?;
        ctx.stage("mem_attn.attend", dev, || {
            self.attn.attend_projected(&q, &k, &v)
        })
    }

    /// q: [B, H, Nq, d], k: [B, H, Nk, d] -> rotated (q, k).
    fn apply_rope(
        &self,
        q: &Tensor,
        k: &Tensor,
        num_k_exclude_rope: usize,
        num_spatial_mem: Option<usize>,
    ) -> Result<(Tensor, Tensor)> {
        let nq = q.dim(2)?;
        let nk = k.dim(2)?;
        let dev = q.device();
        match self.layout {
            RopeLayout::V1 {
                feat_sizes: [w, h],
                repeat_k,
            } => {
                let table = if w * h == nq {
                    self.rope.table(w, h, dev)?
                } else {
                    self.rope.square_table(nq, dev)?
                };
                if nq != nk && !repeat_k {
                    bail!("RoPEAttention: {nq} queries and {nk} keys need rope_k_repeat");
                }
                let q = rope::rotate_tokens(q, &table, 0, false)?;
                let k = rope::rotate_tokens(k, &table, num_k_exclude_rope, repeat_k)?;
                Ok((q, k))
            }
            RopeLayout::V2 { q_sizes, k_sizes } => {
                let Some(frames) = num_spatial_mem else {
                    bail!("RoPEAttentionv2 needs the number of memory frames");
                };
                let tq = self.rope.table(q_sizes[0], q_sizes[1], dev)?;
                let tk = self.rope.table(k_sizes[0], k_sizes[1], dev)?;
                let q = rope::apply_rotary_enc_v2(q, &tq, 1)?;
                let k = rope::rotate_leading(k, num_k_exclude_rope, |k| {
                    rope::apply_rotary_enc_v2(k, &tk, frames)
                })?;
                Ok((q, k))
            }
        }
    }
}

/// `MemoryAttentionLayer`: pre-norm self-attention, cross-attention to the memories, ReLU FFN.
#[derive(Debug)]
pub struct MemoryAttentionLayer {
    self_attn: RoPEAttention,
    cross_attn_image: RoPEAttention,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    norm3: LayerNorm,
    pos_enc_at_attn: bool,
    pos_enc_at_cross_attn_queries: bool,
    pos_enc_at_cross_attn_keys: bool,
}

impl MemoryAttentionLayer {
    pub fn new(cfg: &MemoryAttentionConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        Self::new_shared(cfg, &mut RopeCache::default(), opts, vb)
    }

    /// As [`Self::new`], with the rotary tables taken from `cache`.
    pub fn new_shared(
        cfg: &MemoryAttentionConfig,
        cache: &mut RopeCache,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Self {
            self_attn: RoPEAttention::new_shared(
                d,
                &cfg.self_attention,
                cache,
                opts,
                vb.pp("self_attn"),
            )?,
            cross_attn_image: RoPEAttention::new_shared(
                d,
                &cfg.cross_attention,
                cache,
                opts,
                vb.pp("cross_attn_image"),
            )?,
            linear1: crate::nn::linear::linear(d, cfg.dim_feedforward, vb.pp("linear1"))?,
            linear2: crate::nn::linear::linear(cfg.dim_feedforward, d, vb.pp("linear2"))?,
            norm1: layer_norm(d, LN_EPS, vb.pp("norm1"))?,
            norm2: layer_norm(d, LN_EPS, vb.pp("norm2"))?,
            norm3: layer_norm(d, LN_EPS, vb.pp("norm3"))?,
            pos_enc_at_attn: cfg.pos_enc_at_attn,
            pos_enc_at_cross_attn_queries: cfg.pos_enc_at_cross_attn_queries,
            pos_enc_at_cross_attn_keys: cfg.pos_enc_at_cross_attn_keys,
        })
    }

    fn set_chunk(&mut self, chunk: Option<usize>) {
        self.self_attn.set_chunk(chunk);
        self.cross_attn_image.set_chunk(chunk);
    }

    /// tgt: [B, N, C], memory: [B, M, Cm], pos: [B, M, Cm] (memory), query_pos: [B, N, C]
    /// -> [B, N, C]; attention stages profiled in `ctx`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        tgt: &Tensor,
        memory: &Tensor,
        pos: &Tensor,
        query_pos: &Tensor,
        num_k_exclude_rope: usize,
        num_spatial_mem: Option<usize>,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        // Self-attention.
        let t2 = self.norm1.forward(tgt)?;
        let qk = if self.pos_enc_at_attn {
            (&t2 + query_pos)?
        } else {
            t2.clone()
        };
        let tgt = (tgt + self.self_attn.forward(&qk, &qk, &t2, 0, None, ctx)?)?;
        // Cross-attention to the memories.
        let t2 = self.norm2.forward(&tgt)?;
        let q = if self.pos_enc_at_cross_attn_queries {
            (&t2 + query_pos)?
        } else {
            t2
        };
        let k = if self.pos_enc_at_cross_attn_keys {
            (memory + pos)?
        } else {
            memory.clone()
        };
        let ca = self.cross_attn_image.forward(
            &q,
            &k,
            memory,
            num_k_exclude_rope,
            num_spatial_mem,
            ctx,
        )?;
        let tgt = (tgt + ca)?;
        // Feed-forward.
        let t2 = self.norm3.forward(&tgt)?;
        let t2 = self
            .linear2
            .forward(&self.linear1.forward_act(&t2, Activation::Relu)?)?;
        tgt + t2
    }
}

/// `MemoryAttention`.
#[derive(Debug)]
pub struct MemoryAttention {
    layers: Vec<MemoryAttentionLayer>,
    norm: LayerNorm,
    pos_enc_at_input: bool,
    d_model: usize,
    chunk: Option<usize>,
}

impl MemoryAttention {
    /// Weights under `memory_attention` (pass `vb.pp("memory_attention")`).
    pub fn new(cfg: &MemoryAttentionConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        // One set of rotary tables for all layers (about 4 MB per 64x64 table at head width 256).
        let mut cache = RopeCache::default();
        let layers = (0..cfg.num_layers)
            .map(|i| MemoryAttentionLayer::new_shared(cfg, &mut cache, opts, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            norm: layer_norm(cfg.d_model, LN_EPS, vb.pp("norm"))?,
            pos_enc_at_input: cfg.pos_enc_at_input,
            d_model: cfg.d_model,
            chunk: Some(DEFAULT_QUERY_CHUNK),
        })
    }

    /// Query rows per attention block in every layer (None: all queries at once). The result
    /// does not depend on it beyond the last bit; it bounds the score matrix held at once.
    pub fn set_chunk(&mut self, chunk: Option<usize>) -> Result<()> {
        if chunk == Some(0) {
            bail!("memory attention: query chunk must be positive");
        }
        self.chunk = chunk;
        for l in &mut self.layers {
            l.set_chunk(chunk);
        }
        Ok(())
    }

    pub fn chunk(&self) -> Option<usize> {
        self.chunk
    }

    /// SAM 2.1 form. curr, curr_pos: [HW, B, C]; memory, memory_pos: [M, B, Cm] with the
    /// `num_obj_ptr_tokens` object-pointer tokens last -> [HW, B, C].
    pub fn forward(
        &self,
        curr: &Tensor,
        memory: &Tensor,
        curr_pos: &Tensor,
        memory_pos: &Tensor,
        num_obj_ptr_tokens: usize,
    ) -> Result<Tensor> {
        self.forward_with_frames(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens, None)
    }

    /// As [`Self::forward`], with the number of memory frames in `memory` (required when the
    /// cross-attention is `RoPEAttentionv2`, as in EdgeTAM).
    pub fn forward_with_frames(
        &self,
        curr: &Tensor,
        memory: &Tensor,
        curr_pos: &Tensor,
        memory_pos: &Tensor,
        num_obj_ptr_tokens: usize,
        num_spatial_mem: Option<usize>,
    ) -> Result<Tensor> {
        self.forward_with_frames_ctx(
            curr,
            memory,
            curr_pos,
            memory_pos,
            num_obj_ptr_tokens,
            num_spatial_mem,
            &ExecCtx::default(),
        )
    }

    /// As [`Self::forward_with_frames`] in a session's context: each layer waits at `ctx`'s
    /// layer fence, and the attention stages are profiled in `ctx`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with_frames_ctx(
        &self,
        curr: &Tensor,
        memory: &Tensor,
        curr_pos: &Tensor,
        memory_pos: &Tensor,
        num_obj_ptr_tokens: usize,
        num_spatial_mem: Option<usize>,
        ctx: &ExecCtx,
    ) -> Result<Tensor> {
        let (out, _) = self.run(
            curr,
            memory,
            curr_pos,
            memory_pos,
            num_obj_ptr_tokens,
            num_spatial_mem,
            false,
            ctx,
        )?;
        Ok(out)
    }

    /// As [`Self::forward_with_frames`], also returning each layer's output `[B, HW, C]`
    /// (batch-first, as inside the official module).
    pub fn forward_layers(
        &self,
        curr: &Tensor,
        memory: &Tensor,
        curr_pos: &Tensor,
        memory_pos: &Tensor,
        num_obj_ptr_tokens: usize,
        num_spatial_mem: Option<usize>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        self.run(
            curr,
            memory,
            curr_pos,
            memory_pos,
            num_obj_ptr_tokens,
            num_spatial_mem,
            true,
            &ExecCtx::default(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        curr: &Tensor,
        memory: &Tensor,
        curr_pos: &Tensor,
        memory_pos: &Tensor,
        num_obj_ptr_tokens: usize,
        num_spatial_mem: Option<usize>,
        keep_layers: bool,
        ctx: &ExecCtx,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (n, b, c) = curr.dims3()?;
        let (m, mb, _) = memory.dims3()?;
        if c != self.d_model {
            bail!(
                "memory attention: curr has {c} channels, expected {}",
                self.d_model
            );
        }
        if mb != b {
            bail!("memory attention: batch of curr ({b}) and memory ({mb}) differ");
        }
        if curr_pos.dims() != curr.dims() || memory_pos.dims() != memory.dims() {
            bail!("memory attention: position encodings do not match their inputs");
        }
        if num_obj_ptr_tokens > m {
            bail!("memory attention: {num_obj_ptr_tokens} pointer tokens in a {m}-token memory");
        }
        let mut out = curr.clone();
        if self.pos_enc_at_input {
            out = (out + (curr_pos * 0.1)?)?;
        }
        // Batch-first inside the layers.
        let mut out = out.transpose(0, 1)?.contiguous_fast()?;
        let curr_pos = curr_pos.transpose(0, 1)?.contiguous_fast()?;
        let memory = memory.transpose(0, 1)?.contiguous_fast()?;
        let memory_pos = memory_pos.transpose(0, 1)?.contiguous_fast()?;
        let mut per_layer = Vec::new();
        for layer in &self.layers {
            out = layer.forward(
                &out,
                &memory,
                &memory_pos,
                &curr_pos,
                num_obj_ptr_tokens,
                num_spatial_mem,
                ctx,
            )?;
            ctx.fence(out.device(), FencePoint::MemoryAttentionLayer)?;
            if keep_layers {
                per_layer.push(out.clone());
            }
        }
        let out = self
            .norm
            .forward(&out)?
            .transpose(0, 1)?
            .contiguous_fast()?;
        debug_assert_eq!(out.dims(), [n, b, c]);
        Ok((out, per_layer))
    }
}
