//! `sam2/modeling/memory_encoder.py`: turns the current frame's backbone feature and its predicted
//! mask into a memory (`maskmem_features`) and its sine position encoding. Shared by SAM 2.1 and
//! EdgeTAM (EdgeTAM then compresses the result with its spatial perceiver).
//!
//! Weight keys under `memory_encoder`:
//! `mask_downsampler.encoder.{3i}` (convs), `.{3i+1}` (LayerNorm2d), `.{3n}` (final 1x1 conv),
//! `pix_feat_proj`, `fuser.layers.{j}.{dwconv,norm,pwconv1,pwconv2,gamma}`, `out_proj`.

use crate::config::{FuserConfig, MaskDownSamplerConfig, MemoryEncoderConfig};
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::linear::{Activation, Linear};
use crate::nn::norm::LayerNorm2d;
use crate::nn::position_encoding::PositionEmbeddingSine;
use crate::nn::ContiguousExt;
use crate::nn::ModelOptions;
use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

/// Temperature of the memory position encoding (`PositionEmbeddingSine(temperature=10000)` in
/// every released config; the variant files carry no field for it).
const POS_TEMPERATURE: f64 = 10000.0;

/// Epsilon of every LayerNorm2d in the memory encoder.
const LN2D_EPS: f64 = 1e-6;

/// `MaskDownSampler`: `n = log_stride(total_stride)` blocks of
/// [conv k/s/p -> LayerNorm2d -> GELU], each multiplying the channels by `stride^2` (1 -> s^2 ->
/// s^4 ...), then a 1x1 conv to `embed_dim`.
#[derive(Debug, Clone)]
pub struct MaskDownSampler {
    blocks: Vec<(Conv2d, LayerNorm2d)>,
    proj: Conv2d,
}

impl MaskDownSampler {
    /// Number of downsampling blocks: the `n` with `stride^n == total_stride`.
    pub fn num_layers(cfg: &MaskDownSamplerConfig) -> Result<usize> {
        if cfg.stride < 2 {
            bail!(
                "mask downsampler: stride must be at least 2, got {}",
                cfg.stride
            );
        }
        let mut n = 0;
        let mut s = 1usize;
        while s < cfg.total_stride {
            s *= cfg.stride;
            n += 1;
        }
        if s != cfg.total_stride {
            bail!(
                "mask downsampler: total_stride {} is not a power of stride {}",
                cfg.total_stride,
                cfg.stride
            );
        }
        Ok(n)
    }

    pub fn new(cfg: &MaskDownSamplerConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let n = Self::num_layers(cfg)?;
        let vb = vb.pp("encoder");
        let conv_cfg = Conv2dConfig {
            padding: cfg.padding,
            stride: cfg.stride,
            ..Default::default()
        };
        let mut blocks = Vec::with_capacity(n);
        let mut c_in = 1usize;
        for i in 0..n {
            let c_out = c_in * cfg.stride * cfg.stride;
            let conv = conv2d(c_in, c_out, cfg.kernel_size, conv_cfg, opts, vb.pp(3 * i))?;
            let norm = LayerNorm2d::new(c_out, LN2D_EPS, vb.pp(3 * i + 1))?;
            blocks.push((conv, norm));
            c_in = c_out;
        }
        let proj = conv2d(
            c_in,
            cfg.embed_dim,
            1,
            Default::default(),
            opts,
            vb.pp(3 * n),
        )?;
        Ok(Self { blocks, proj })
    }
}

impl Module for MaskDownSampler {
    /// x: [B, 1, S, S] -> [B, embed_dim, S/total_stride, S/total_stride]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv, norm) in &self.blocks {
            x = norm.forward_gelu(&conv.forward(&x)?)?;
        }
        self.proj.forward(&x)
    }
}

/// `CXBlock` (ConvNeXt block): depthwise k x k conv, LayerNorm2d, Linear(dim, 4 dim), exact
/// GELU, Linear(4 dim, dim), per-channel `gamma`, residual.
#[derive(Debug, Clone)]
pub struct CXBlock {
    dwconv: Conv2d,
    norm: LayerNorm2d,
    pwconv1: Linear,
    pwconv2: Linear,
    gamma: Tensor,
}

impl CXBlock {
    pub fn new(cfg: &FuserConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.dim;
        let dw_cfg = Conv2dConfig {
            padding: cfg.padding,
            groups: dim,
            ..Default::default()
        };
        Ok(Self {
            dwconv: conv2d(dim, dim, cfg.kernel_size, dw_cfg, opts, vb.pp("dwconv"))?,
            norm: LayerNorm2d::new(dim, LN2D_EPS, vb.pp("norm"))?,
            pwconv1: crate::nn::linear::linear(dim, 4 * dim, vb.pp("pwconv1"))?,
            pwconv2: crate::nn::linear::linear(4 * dim, dim, vb.pp("pwconv2"))?,
            gamma: vb.get(dim, "gamma")?,
        })
    }
}

impl Module for CXBlock {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.norm.forward(&self.dwconv.forward(x)?)?;
        // contiguous: CUDA matmul needs a dense left operand (CPU accepts the strided view)
        let y = y.permute((0, 2, 3, 1))?.contiguous_fast()?;
        let y = self.pwconv1.forward_act(&y, Activation::GeluErf)?;
        let y = self.pwconv2.forward(&y)?.broadcast_mul(&self.gamma)?;
        x + y.permute((0, 3, 1, 2))?
    }
}

/// `Fuser`: `num_layers` CXBlocks in sequence (no input projection in any released config).
#[derive(Debug, Clone)]
pub struct Fuser {
    layers: Vec<CXBlock>,
}

impl Fuser {
    pub fn new(cfg: &FuserConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let layers = (0..cfg.num_layers)
            .map(|i| CXBlock::new(cfg, opts, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }
}

impl Module for Fuser {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        Ok(x)
    }
}

/// Every intermediate of one memory-encoder pass (for parity tests and debugging).
#[derive(Debug, Clone)]
pub struct MemoryEncoderStages {
    /// `mask_downsampler(mask)`: [B, in_dim, e, e]
    pub mask_downsampled: Tensor,
    /// `fuser(pix_feat_proj(pix_feat) + mask_downsampled)`: [B, in_dim, e, e]
    pub fused: Tensor,
    /// `vision_features`: [B, out_dim, e, e]
    pub features: Tensor,
    /// `vision_pos_enc[0]`: [B, pos_num_feats, e, e], in the dtype of `features`
    pub pos: Tensor,
}

/// `MemoryEncoder`.
#[derive(Debug)]
pub struct MemoryEncoder {
    mask_downsampler: MaskDownSampler,
    pix_feat_proj: Conv2d,
    fuser: Fuser,
    /// None when `out_dim == in_dim` (`nn.Identity` in the official code).
    out_proj: Option<Conv2d>,
    position_encoding: PositionEmbeddingSine,
    in_dim: usize,
}

impl MemoryEncoder {
    /// Weights under `memory_encoder` (pass `vb.pp("memory_encoder")`).
    pub fn new(cfg: &MemoryEncoderConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let in_dim = cfg.in_dim;
        if cfg.mask_downsampler.embed_dim != in_dim || cfg.fuser.dim != in_dim {
            bail!(
                "memory encoder: mask_downsampler.embed_dim ({}) and fuser.dim ({}) must equal in_dim ({in_dim})",
                cfg.mask_downsampler.embed_dim,
                cfg.fuser.dim
            );
        }
        if cfg.pos_num_feats != cfg.out_dim {
            bail!(
                "memory encoder: pos_num_feats ({}) must equal out_dim ({})",
                cfg.pos_num_feats,
                cfg.out_dim
            );
        }
        if !cfg.pos_num_feats.is_multiple_of(4) {
            bail!(
                "memory encoder: pos_num_feats {} is not a multiple of 4",
                cfg.pos_num_feats
            );
        }
        let out_proj = if cfg.out_dim != in_dim {
            Some(conv2d(
                in_dim,
                cfg.out_dim,
                1,
                Default::default(),
                opts,
                vb.pp("out_proj"),
            )?)
        } else {
            None
        };
        Ok(Self {
            mask_downsampler: MaskDownSampler::new(
                &cfg.mask_downsampler,
                opts,
                vb.pp("mask_downsampler"),
            )?,
            pix_feat_proj: conv2d(
                in_dim,
                in_dim,
                1,
                Default::default(),
                opts,
                vb.pp("pix_feat_proj"),
            )?,
            fuser: Fuser::new(&cfg.fuser, opts, vb.pp("fuser"))?,
            out_proj,
            position_encoding: PositionEmbeddingSine::new(cfg.pos_num_feats, POS_TEMPERATURE),
            in_dim,
        })
    }

    /// pix_feat: [B, in_dim, e, e], masks: [B, 1, S, S] (mask logits, or already
    /// `sigmoid*scale+bias` when `skip_mask_sigmoid`) -> (features [B, out_dim, e, e],
    /// pos [B, out_dim, e, e]).
    pub fn forward(
        &self,
        pix_feat: &Tensor,
        masks: &Tensor,
        skip_mask_sigmoid: bool,
    ) -> Result<(Tensor, Tensor)> {
        let s = self.forward_stages(pix_feat, masks, skip_mask_sigmoid)?;
        Ok((s.features, s.pos))
    }

    /// Like [`Self::forward`], keeping every intermediate.
    pub fn forward_stages(
        &self,
        pix_feat: &Tensor,
        masks: &Tensor,
        skip_mask_sigmoid: bool,
    ) -> Result<MemoryEncoderStages> {
        let (b, c, h, w) = pix_feat.dims4()?;
        if c != self.in_dim {
            bail!(
                "memory encoder: pix_feat has {c} channels, expected {}",
                self.in_dim
            );
        }
        let (mb, mc, _, _) = masks.dims4()?;
        if mb != b || mc != 1 {
            bail!(
                "memory encoder: masks {:?} do not fit pix_feat {:?}",
                masks.dims(),
                pix_feat.dims()
            );
        }
        let masks = if skip_mask_sigmoid {
            masks.clone()
        } else {
            candle_nn::ops::sigmoid(masks)?
        };
        let mask_downsampled = self.mask_downsampler.forward(&masks)?;
        if mask_downsampled.dims() != [b, c, h, w] {
            bail!(
                "memory encoder: downsampled mask {:?} does not match pix_feat {:?}",
                mask_downsampled.dims(),
                pix_feat.dims()
            );
        }
        let x = (self.pix_feat_proj.forward(pix_feat)? + &mask_downsampled)?;
        let fused = self.fuser.forward(&x)?;
        let features = match &self.out_proj {
            Some(p) => p.forward(&fused)?,
            None => fused.clone(),
        };
        let pos = self
            .position_encoding
            .forward(&features)?
            .to_dtype(features.dtype())?;
        Ok(MemoryEncoderStages {
            mask_downsampled,
            fused,
            features,
            pos,
        })
    }
}
