//! `ImageEncoder` and `FpnNeck` (`sam2/modeling/backbones/image_encoder.py`), at `image_encoder`.
//!
//! The trunk is pluggable ([`Trunk`]): Hiera for SAM 2.1, RepViT for EdgeTAM. The neck projects
//! each trunk level to `d_model` channels with a lateral conv (`convs.0` takes the LOWEST
//! resolution), adds a nearest-upsampled top-down path only on `fpn_top_down_levels`, and attaches
//! a sine position encoding to every level; `scalp` then drops the lowest-resolution levels
//! (architecture.md §3.2).

use crate::config::{FencePoint, ModelConfig, NeckConfig, TrunkConfig};
use crate::exec::ExecCtx;
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::interpolate;
use crate::nn::position_encoding::PositionEmbeddingSine;
use crate::nn::ModelOptions;
use crate::sam2::backbones::hieradet::Hiera;
use crate::sam2::backbones::repvit::RepVit;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

/// A backbone producing feature maps, highest resolution first, each `[B, C_k, H_k, W_k]`.
pub trait Trunk: std::fmt::Debug + Send + Sync {
    /// Run with a session's execution context (fences and profiled stages inside the trunk).
    fn forward_ctx(&self, x: &Tensor, ctx: &ExecCtx) -> Result<Vec<Tensor>>;

    /// [`Trunk::forward_ctx`] with the default context.
    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.forward_ctx(x, &ExecCtx::default())
    }
}

impl Trunk for Hiera {
    /// x: [B, 3, S, S] -> 4 NCHW stage outputs
    fn forward_ctx(&self, x: &Tensor, ctx: &ExecCtx) -> Result<Vec<Tensor>> {
        self.forward_stages_ctx(x, ctx)
    }
}

/// EdgeTAM's RepViT as a [`Trunk`] (a local wrapper, so this file alone decides the wiring).
#[derive(Debug)]
struct RepVitTrunk(RepVit);

impl Trunk for RepVitTrunk {
    /// x: [B, 3, S, S] -> 4 NCHW stage outputs (RepViT has no fences or profiled stages inside).
    fn forward_ctx(&self, x: &Tensor, _ctx: &ExecCtx) -> Result<Vec<Tensor>> {
        self.0.forward(x)
    }
}

/// How the neck upsamples the top-down path (`fpn_interp_model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopDownInterp {
    Nearest,
    Bilinear,
    Bicubic,
}

/// `FpnNeck` with `fuse_type` sum or avg.
#[derive(Debug)]
pub struct FpnNeck {
    /// `convs.{i}.conv`; `convs.0` reads the lowest-resolution trunk level.
    convs: Vec<Conv2d>,
    position_encoding: PositionEmbeddingSine,
    top_down_levels: Vec<usize>,
    interp: TopDownInterp,
    fuse_avg: bool,
}

impl FpnNeck {
    pub fn new(cfg: &NeckConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let conv_cfg = Conv2dConfig::default();
        let convs = cfg
            .backbone_channel_list
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                conv2d(
                    c,
                    cfg.d_model,
                    cfg.kernel_size,
                    conv_cfg,
                    opts,
                    vb.pp("convs").pp(i).pp("conv"),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let interp = match cfg.fpn_interp_model.as_str() {
            "nearest" => TopDownInterp::Nearest,
            "bilinear" => TopDownInterp::Bilinear,
            "bicubic" => TopDownInterp::Bicubic,
            other => candle_core::bail!("fpn neck: unsupported fpn_interp_model '{other}'"),
        };
        let fuse_avg = match cfg.fuse_type.as_str() {
            "sum" => false,
            "avg" => true,
            other => candle_core::bail!("fpn neck: unsupported fuse_type '{other}'"),
        };
        if !cfg.pos_num_feats.is_multiple_of(4) {
            candle_core::bail!(
                "fpn neck: pos_num_feats {} is not a multiple of 4",
                cfg.pos_num_feats
            )
        }
        Ok(Self {
            convs,
            position_encoding: PositionEmbeddingSine::new(cfg.pos_num_feats, cfg.pos_temperature),
            top_down_levels: cfg.fpn_top_down_levels.clone(),
            interp,
            fuse_avg,
        })
    }

    /// xs: trunk levels, highest resolution first -> (features, position encodings), same order,
    /// each `[B, d_model, H_k, W_k]`.
    pub fn forward(&self, xs: &[Tensor]) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let n = self.convs.len();
        if xs.len() != n {
            candle_core::bail!("fpn neck: {} trunk levels for {n} lateral convs", xs.len())
        }
        let mut out: Vec<Option<Tensor>> = vec![None; n];
        let mut pos: Vec<Option<Tensor>> = vec![None; n];
        let mut prev: Option<Tensor> = None;
        for i in (0..n).rev() {
            let lateral = self.convs[n - 1 - i].forward(&xs[i])?;
            let fused = match (&prev, self.top_down_levels.contains(&i)) {
                (Some(p), true) => {
                    let (_, _, h, w) = p.dims4()?;
                    let p32 = p.to_dtype(DType::F32)?;
                    let up = match self.interp {
                        TopDownInterp::Nearest => interpolate::nearest(&p32, (2 * h, 2 * w))?,
                        TopDownInterp::Bilinear => interpolate::bilinear(&p32, (2 * h, 2 * w))?,
                        TopDownInterp::Bicubic => interpolate::bicubic(&p32, (2 * h, 2 * w))?,
                    };
                    let s = lateral.to_dtype(DType::F32)?.add(&up)?;
                    let s = if self.fuse_avg { (s / 2.0)? } else { s };
                    s.to_dtype(lateral.dtype())?
                }
                _ => lateral,
            };
            let pe = self
                .position_encoding
                .forward(&fused)?
                .to_dtype(fused.dtype())?;
            pos[i] = Some(pe);
            out[i] = Some(fused.clone());
            prev = Some(fused);
        }
        let unwrap = |v: Vec<Option<Tensor>>| -> Result<Vec<Tensor>> {
            v.into_iter()
                .map(|t| {
                    t.ok_or_else(|| candle_core::Error::Msg("fpn neck: level not computed".into()))
                })
                .collect()
        };
        Ok((unwrap(out)?, unwrap(pos)?))
    }
}

/// What `ImageEncoder.forward` returns.
#[derive(Debug, Clone)]
pub struct ImageEncoderOutput {
    /// The lowest-resolution kept level (`backbone_fpn.last()`), `[B, d_model, S/16, S/16]`.
    pub vision_features: Tensor,
    /// Sine PE of each kept level, highest resolution first.
    pub vision_pos_enc: Vec<Tensor>,
    /// Kept FPN levels, highest resolution first.
    pub backbone_fpn: Vec<Tensor>,
}

/// Trunk + FPN neck + scalp.
#[derive(Debug)]
pub struct ImageEncoder {
    trunk: Box<dyn Trunk>,
    neck: FpnNeck,
    scalp: usize,
    /// The trunk and the neck replayed as one CUDA graph when the session's context asks for it.
    trunk_graph: crate::cuda::graph::GraphedFn,
}

impl ImageEncoder {
    pub fn new(cfg: &ModelConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let ie = &cfg.image_encoder;
        let trunk: Box<dyn Trunk> = match &ie.trunk {
            TrunkConfig::Hiera(h) => {
                let hiera = Hiera::new(h, opts, vb.pp("trunk"))?.with_image_size(cfg.image_size)?;
                let mut want = ie.neck.backbone_channel_list.clone();
                want.reverse();
                if hiera.channels() != want {
                    candle_core::bail!(
                        "image encoder: trunk channels {:?} do not match the neck's {:?} (highest resolution first)",
                        hiera.channels(),
                        want
                    )
                }
                Box::new(hiera)
            }
            TrunkConfig::Repvit(r) => {
                let mut want = ie.neck.backbone_channel_list.clone();
                want.reverse();
                if r.embed_dims != want {
                    candle_core::bail!(
                        "image encoder: RepViT widths {:?} do not match the neck's {:?} (highest resolution first)",
                        r.embed_dims,
                        want
                    )
                }
                Box::new(RepVitTrunk(RepVit::new(r, opts, vb.pp("trunk"))?))
            }
        };
        let neck = FpnNeck::new(&ie.neck, opts, vb.pp("neck"))?;
        if ie.scalp >= ie.neck.backbone_channel_list.len() {
            candle_core::bail!(
                "image encoder: scalp {} would drop all {} levels",
                ie.scalp,
                ie.neck.backbone_channel_list.len()
            )
        }
        Ok(Self {
            trunk,
            neck,
            scalp: ie.scalp,
            trunk_graph: Default::default(),
        })
    }

    /// Build from an already constructed trunk (EdgeTAM's RepViT, or a test trunk).
    pub fn from_parts(trunk: Box<dyn Trunk>, neck: FpnNeck, scalp: usize) -> Self {
        Self {
            trunk,
            neck,
            scalp,
            trunk_graph: Default::default(),
        }
    }

    /// Whether the trunk (with the neck) runs as a CUDA graph: `off`, `eager` (warming up),
    /// `captured` or `failed: <why>` (`crate::cuda::graph`).
    pub fn trunk_graph_status(&self) -> String {
        self.trunk_graph.status()
    }

    pub fn trunk(&self) -> &dyn Trunk {
        self.trunk.as_ref()
    }

    pub fn neck(&self) -> &FpnNeck {
        &self.neck
    }

    /// image: [B, 3, S, S] normalized -> features of the kept levels, in a session's context:
    /// the trunk and neck graphed when `ctx` says so, the trunk and neck fences and stages of
    /// `ctx`.
    pub fn forward_ctx(&self, image: &Tensor, ctx: &ExecCtx) -> Result<ImageEncoderOutput> {
        let dev = image.device();
        let (mut features, mut pos) = if ctx.graph_trunk() && dev.is_cuda() {
            // trunk and neck in one graph (no profiler here: graphs are off while profiling)
            let mut out = self.trunk_graph.run(image, true, &|x| {
                let xs = self.trunk.forward_ctx(x, ctx)?;
                let (mut features, pos) = self.neck.forward(&xs)?;
                features.extend(pos);
                Ok(features)
            })?;
            let pos = out.split_off(out.len() / 2);
            (out, pos)
        } else {
            let xs = ctx.stage("image_encoder.trunk", dev, || {
                self.trunk.forward_ctx(image, ctx)
            })?;
            ctx.fence(dev, FencePoint::Trunk)?;
            ctx.stage("image_encoder.neck", dev, || self.neck.forward(&xs))?
        };
        ctx.fence(dev, FencePoint::Neck)?;
        let keep = features.len().saturating_sub(self.scalp);
        features.truncate(keep);
        pos.truncate(keep);
        let vision_features = match features.last() {
            Some(f) => f.clone(),
            None => candle_core::bail!("image encoder: no feature level left after scalp"),
        };
        Ok(ImageEncoderOutput {
            vision_features,
            vision_pos_enc: pos,
            backbone_fpn: features,
        })
    }

    /// [`ImageEncoder::forward_ctx`] with the default context (no fences, eager trunk).
    pub fn forward(&self, image: &Tensor) -> Result<ImageEncoderOutput> {
        self.forward_ctx(image, &ExecCtx::default())
    }
}
