//! EdgeTAM's spatial perceiver (`EdgeTAM:sam2/modeling/perceiver.py`, `PerceiverResampler`):
//! compresses one memory frame `[B, C, H, W]` into `num_latents` global latents plus
//! `num_latents_2d` window latents (architecture.md §3.8).
//!
//! * 1D path: learned latents cross-attend to all `H*W` memory tokens; the memory's sine position
//!   encoding is added to both keys **and** values after the projection. The module's
//!   `pos_enc_at_key_value` flag is ignored by the official code whenever a position encoding is
//!   passed (its `_pos = None` is overwritten on the next line), so it is ignored here as well.
//!   Output position encoding: zeros.
//! * 2D path: one latent per window of a `sqrt(num_latents_2d)`-square window grid attends to its
//!   own window's tokens only, through the same layers, without position encoding. Output position
//!   encoding: the sine encoding of the window-grid map.
//!
//! The official 2D path fails for B > 1 (a `.view` on an expanded tensor, EdgeTAM issue #15); this
//! port computes what `.reshape` would, so several objects work.

use crate::config::PerceiverConfig;
use crate::nn::attention::{recombine_heads, sdpa, separate_heads};
use crate::nn::linear::{linear_no_bias, Activation, Linear};
use crate::nn::norm::layer_norm;
use crate::nn::position_encoding::PositionEmbeddingSine;
use crate::nn::ContiguousExt;
use crate::nn::ModelOptions;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{LayerNorm, VarBuilder};

/// `nn.LayerNorm` default epsilon, used by every norm of the perceiver.
const LN_EPS: f64 = 1e-5;
/// Temperature of the 2D latents' sine encoding (`PositionEmbeddingSine` in edgetam.yaml).
const PE_TEMPERATURE: f64 = 10000.0;

/// `FeedForward`: LayerNorm, Linear (no bias) to `dim*mult`, exact GELU, Linear (no bias) back.
/// Weights `0` (norm), `1`, `3`.
#[derive(Debug, Clone)]
struct FeedForward {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl FeedForward {
    fn new(dim: usize, mult: usize, vb: VarBuilder) -> Result<Self> {
        let inner = dim * mult;
        Ok(Self {
            norm: layer_norm(dim, LN_EPS, vb.pp("0"))?,
            fc1: linear_no_bias(dim, inner, vb.pp("1"))?,
            fc2: linear_no_bias(inner, dim, vb.pp("3"))?,
        })
    }
}

impl Module for FeedForward {
    /// x: [B, N, dim] -> [B, N, dim]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self
            .fc1
            .forward_act(&self.norm.forward(x)?, Activation::GeluErf)?;
        self.fc2.forward(&h)
    }
}

/// `PerceiverAttention`: latents (queries) attend to the memory tokens.
#[derive(Debug, Clone)]
struct PerceiverAttention {
    heads: usize,
    inner: usize,
    norm_x: LayerNorm,
    norm_latents: LayerNorm,
    to_q: Linear,
    to_kv: Linear,
    to_out: Linear,
    concat_kv_latents: bool,
    /// May use the fused CUDA attention kernel ([`ModelOptions::fused_attention`]).
    fused: bool,
}

impl PerceiverAttention {
    fn new(cfg: &PerceiverConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let (dim, inner) = (cfg.dim, cfg.dim_head * cfg.heads);
        Ok(Self {
            heads: cfg.heads,
            inner,
            norm_x: layer_norm(dim, LN_EPS, vb.pp("norm_x"))?,
            norm_latents: layer_norm(dim, LN_EPS, vb.pp("norm_latents"))?,
            to_q: linear_no_bias(dim, inner, vb.pp("to_q"))?,
            to_kv: linear_no_bias(dim, 2 * inner, vb.pp("to_kv"))?,
            to_out: linear_no_bias(inner, dim, vb.pp("to_out"))?,
            concat_kv_latents: cfg.concat_kv_latents,
            fused: opts.fused_attention,
        })
    }

    /// latents: [B, Nl, dim], x: [B, Nx, dim], pos: [B, Nx, inner] -> [B, Nl, dim]
    fn forward(&self, latents: &Tensor, x: &Tensor, pos: Option<&Tensor>) -> Result<Tensor> {
        let latents = self.norm_latents.forward(latents)?;
        let x = self.norm_x.forward(x)?;
        let q = self.to_q.forward(&latents)?;
        let kv_in = if self.concat_kv_latents {
            if pos.is_some() {
                candle_core::bail!("perceiver: a key/value position encoding cannot be combined with concat_kv_latents");
            }
            Tensor::cat(&[&x, &latents], 1)?
        } else {
            x
        };
        let kv = self.to_kv.forward(&kv_in)?;
        let mut k = kv.narrow(D::Minus1, 0, self.inner)?;
        let mut v = kv.narrow(D::Minus1, self.inner, self.inner)?;
        if let Some(p) = pos {
            k = k.add(p)?;
            v = v.add(p)?;
        }
        let q = separate_heads(&q, self.heads)?;
        let k = separate_heads(&k, self.heads)?;
        let v = separate_heads(&v, self.heads)?;
        let out = recombine_heads(&sdpa(&q, &k, &v, None, self.fused)?)?;
        self.to_out.forward(&out)
    }
}

/// `Attention` of perceiver.py: self-attention with one shared pre-norm for q and kv.
#[derive(Debug, Clone)]
struct SelfAttention {
    heads: usize,
    inner: usize,
    norm: LayerNorm,
    to_q: Linear,
    to_kv: Linear,
    to_out: Linear,
    /// May use the fused CUDA attention kernel ([`ModelOptions::fused_attention`]).
    fused: bool,
}

impl SelfAttention {
    fn new(cfg: &PerceiverConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let (dim, inner) = (cfg.dim, cfg.dim_head * cfg.heads);
        Ok(Self {
            heads: cfg.heads,
            inner,
            norm: layer_norm(dim, LN_EPS, vb.pp("norm"))?,
            to_q: linear_no_bias(dim, inner, vb.pp("to_q"))?,
            to_kv: linear_no_bias(dim, 2 * inner, vb.pp("to_kv"))?,
            to_out: linear_no_bias(inner, dim, vb.pp("to_out"))?,
            fused: opts.fused_attention,
        })
    }
}

impl Module for SelfAttention {
    /// x: [B, N, dim] -> [B, N, dim]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm.forward(x)?;
        let q = separate_heads(&self.to_q.forward(&x)?, self.heads)?;
        let kv = self.to_kv.forward(&x)?;
        let k = separate_heads(&kv.narrow(D::Minus1, 0, self.inner)?, self.heads)?;
        let v = separate_heads(&kv.narrow(D::Minus1, self.inner, self.inner)?, self.heads)?;
        let out = recombine_heads(&sdpa(&q, &k, &v, None, self.fused)?)?;
        self.to_out.forward(&out)
    }
}

/// `PerceiverEncoderLayer`: cross-attention, FF, then (optionally) self-attention and FF, each
/// residual.
#[derive(Debug, Clone)]
struct PerceiverLayer {
    attn: PerceiverAttention,
    ff: FeedForward,
    self_attn: Option<(SelfAttention, FeedForward)>,
}

impl PerceiverLayer {
    fn new(cfg: &PerceiverConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let self_attn = if cfg.use_self_attn {
            Some((
                SelfAttention::new(cfg, opts, vb.pp("self_attn"))?,
                FeedForward::new(cfg.dim, cfg.ff_mult, vb.pp("self_ff"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            attn: PerceiverAttention::new(cfg, opts, vb.pp("attn"))?,
            ff: FeedForward::new(cfg.dim, cfg.ff_mult, vb.pp("ff"))?,
            self_attn,
        })
    }

    /// latents: [B, Nl, dim], x: [B, Nx, dim], pos: [B, Nx, dim] -> [B, Nl, dim]
    fn forward(&self, latents: &Tensor, x: &Tensor, pos: Option<&Tensor>) -> Result<Tensor> {
        let l = self.attn.forward(latents, x, pos)?.add(latents)?;
        let mut l = self.ff.forward(&l)?.add(&l)?;
        if let Some((sa, sff)) = &self.self_attn {
            l = sa.forward(&l)?.add(&l)?;
            l = sff.forward(&l)?.add(&l)?;
        }
        Ok(l)
    }
}

/// `PerceiverResampler` at `spatial_perceiver`.
#[derive(Debug)]
pub struct PerceiverResampler {
    /// [num_latents, dim]
    latents: Option<Tensor>,
    /// [num_latents_2d, dim]
    latents_2d: Option<Tensor>,
    /// Side of the square window grid of the 2D path (`sqrt(num_latents_2d)`).
    num_window: usize,
    dim: usize,
    layers: Vec<PerceiverLayer>,
    norm: LayerNorm,
    pe: PositionEmbeddingSine,
}

impl PerceiverResampler {
    pub fn new(cfg: &PerceiverConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.dim;
        if cfg.heads == 0 || cfg.dim_head == 0 || dim == 0 || cfg.depth == 0 {
            candle_core::bail!("perceiver: dim, dim_head, heads and depth must be positive");
        }
        if cfg.num_latents == 0 && cfg.num_latents_2d == 0 {
            candle_core::bail!("perceiver: neither 1D nor 2D latents are configured");
        }
        // The position encoding is added to the per-head keys, and the zero and sine encodings are
        // concatenated with the dim-wide latents: both need these widths to agree.
        if cfg.num_latents > 0 && cfg.dim_head * cfg.heads != dim {
            candle_core::bail!(
                "perceiver: heads*dim_head = {} must equal dim {dim} to add the position encoding",
                cfg.dim_head * cfg.heads
            );
        }
        if cfg.pos_num_feats != dim || !cfg.pos_num_feats.is_multiple_of(4) {
            candle_core::bail!(
                "perceiver: pos_num_feats {} must equal dim {dim} and be a multiple of 4",
                cfg.pos_num_feats
            );
        }
        let num_window = (cfg.num_latents_2d as f64).sqrt().round() as usize;
        if num_window * num_window != cfg.num_latents_2d {
            candle_core::bail!(
                "perceiver: num_latents_2d {} is not a square",
                cfg.num_latents_2d
            );
        }
        let latents = if cfg.num_latents > 0 {
            Some(vb.get((cfg.num_latents, dim), "latents")?)
        } else {
            None
        };
        let latents_2d = if cfg.num_latents_2d > 0 {
            Some(vb.get((cfg.num_latents_2d, dim), "latents_2d")?)
        } else {
            None
        };
        let layers = (0..cfg.depth)
            .map(|i| PerceiverLayer::new(cfg, opts, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            latents,
            latents_2d,
            num_window,
            dim,
            layers,
            norm: layer_norm(dim, LN_EPS, vb.pp("norm"))?,
            pe: PositionEmbeddingSine::new(cfg.pos_num_feats, PE_TEMPERATURE),
        })
    }

    /// x: memory features [B, C, H, W], pos: their sine encoding [B, C, H, W] ->
    /// (latents [B, Nl + Nl2d, C], pos [B, Nl + Nl2d, C]), 1D latents first.
    pub fn forward(&self, x: &Tensor, pos: &Tensor) -> Result<(Tensor, Tensor)> {
        self.forward_with_taps(x, pos, &mut |_, _| {})
    }

    /// [`Self::forward`], handing every layer output to `tap` as `perceiver.1d.layers.{i}`
    /// ([B, Nl, C]) and `perceiver.2d.layers.{i}` ([B*Nl2d, 1, C]).
    pub fn forward_with_taps(
        &self,
        x: &Tensor,
        pos: &Tensor,
        tap: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<(Tensor, Tensor)> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.dim {
            candle_core::bail!("perceiver: input has {c} channels, expected {}", self.dim);
        }
        if pos.dims() != x.dims() {
            candle_core::bail!(
                "perceiver: position encoding {:?} does not match features {:?}",
                pos.dims(),
                x.dims()
            );
        }
        let mut feats = Vec::with_capacity(2);
        let mut poss = Vec::with_capacity(2);
        if let Some(lat) = &self.latents {
            let n = lat.dim(0)?;
            let mut l = lat
                .unsqueeze(0)?
                .broadcast_as((b, n, c))?
                .contiguous_fast()?;
            let xs = x.permute((0, 2, 3, 1))?.reshape((b, h * w, c))?;
            let ps = pos
                .permute((0, 2, 3, 1))?
                .reshape((b, h * w, c))?
                .to_dtype(x.dtype())?;
            for (i, layer) in self.layers.iter().enumerate() {
                l = layer.forward(&l, &xs, Some(&ps))?;
                tap(&format!("perceiver.1d.layers.{i}"), &l);
            }
            poss.push(l.zeros_like()?);
            feats.push(self.norm.forward(&l)?);
        }
        if let Some(lat2) = &self.latents_2d {
            let nw = self.num_window;
            let ws = h / nw;
            if ws == 0 || h != nw * ws || w != h {
                candle_core::bail!(
                    "perceiver: a {h}x{w} memory does not split into a {nw}x{nw} grid of square windows"
                );
            }
            let n2 = nw * nw;
            let mut l = lat2
                .unsqueeze(0)?
                .broadcast_as((b, n2, c))?
                .reshape((b * n2, 1, c))?;
            // window partition: [B, C, H, W] -> [B*nw*nw, ws*ws, C], windows row-major
            let xw = x
                .permute((0, 2, 3, 1))?
                .reshape((b, nw, ws, nw, ws, c))?
                .permute((0, 1, 3, 2, 4, 5))?
                .reshape((b * n2, ws * ws, c))?;
            for (i, layer) in self.layers.iter().enumerate() {
                l = layer.forward(&l, &xw, None)?;
                tap(&format!("perceiver.2d.layers.{i}"), &l);
            }
            let grid = l.reshape((b, nw, nw, c))?.permute((0, 3, 1, 2))?;
            let pe = self.pe.forward(&grid)?.to_dtype(x.dtype())?;
            poss.push(pe.permute((0, 2, 3, 1))?.reshape((b, n2, c))?);
            feats.push(self.norm.forward(&l.reshape((b, n2, c))?)?);
        }
        Ok((Tensor::cat(&feats, 1)?, Tensor::cat(&poss, 1)?))
    }
}
