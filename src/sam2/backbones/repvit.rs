//! EdgeTAM's image trunk: timm's RepViT (`repvit_m1.dist_in1k`, `features_only`, all four stages),
//! as EdgeTAM's `TimmBackbone` wraps it (`image_encoder.trunk.body.*`, timm's flattened
//! `stages_{i}` names).
//!
//! Every `ConvNorm` (a bias-free convolution `c` followed by an eval-mode BatchNorm `bn`) is folded
//! into one convolution with bias when the model is built, and each token mixer (a depthwise
//! k x k `ConvNorm`, a depthwise 1x1 `ConvNorm` and the identity, summed) collapses into one
//! depthwise k x k convolution (architecture.md §6.21). The folds are computed in f64 from the
//! checkpoint's f32 values and stored in the weight dtype. [`RepVit::new_unfolded`] keeps the
//! original structure (separate convolutions, BatchNorm from running statistics, three summed
//! token-mixer branches) so tests can compare the two.

use crate::config::RepVitConfig;
use crate::nn::conv::Conv2d;
use crate::nn::ModelOptions;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

/// Eval-mode `BatchNorm2d` parameters (running statistics).
#[derive(Debug, Clone)]
struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
}

impl BatchNorm {
    fn new(c: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(c, "weight")?,
            bias: vb.get(c, "bias")?,
            running_mean: vb.get(c, "running_mean")?,
            running_var: vb.get(c, "running_var")?,
            eps,
        })
    }

    /// Per-channel `(scale, shift)` in f64 with `bn(y) = y * scale + shift`:
    /// `scale = weight / sqrt(var + eps)`, `shift = bias - mean * scale`.
    fn scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let w = self.weight.to_dtype(DType::F64)?;
        let var = self.running_var.to_dtype(DType::F64)?;
        let scale = w.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let mean = self.running_mean.to_dtype(DType::F64)?;
        let shift = self.bias.to_dtype(DType::F64)?.sub(&mean.mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// Unfolded BatchNorm as PyTorch evaluates it: `(x - mean) / sqrt(var + eps) * w + b`.
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        let dt = x.dtype();
        let shape = (1, c, 1, 1);
        let f = |t: &Tensor| t.to_dtype(DType::F32)?.reshape(shape);
        let x = x.to_dtype(DType::F32)?;
        let denom = (f(&self.running_var)? + self.eps)?.sqrt()?;
        x.broadcast_sub(&f(&self.running_mean)?)?
            .broadcast_div(&denom)?
            .broadcast_mul(&f(&self.weight)?)?
            .broadcast_add(&f(&self.bias)?)?
            .to_dtype(dt)
    }
}

/// timm `ConvNorm`: weights `c.weight` and `bn.*`.
#[derive(Debug, Clone)]
enum ConvNorm {
    /// The BatchNorm folded into the convolution's weight and bias.
    Folded(Conv2d),
    /// Convolution without bias, then BatchNorm.
    Unfolded { conv: Conv2d, bn: BatchNorm },
}

/// The raw parts of a `ConvNorm` before it is folded.
struct ConvNormParts {
    /// Convolution weight, read in f32 whatever the model dtype.
    weight: Tensor,
    /// BatchNorm parameters, read in f32.
    bn: BatchNorm,
    cfg: Conv2dConfig,
    /// The model dtype the built convolution is stored in.
    dtype: DType,
}

impl ConvNormParts {
    #[allow(clippy::too_many_arguments)]
    fn load(
        in_c: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        eps: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        // Read in f32 so that a bf16/f16 model folds the checkpoint's exact values and rounds once.
        let dtype = vb.dtype();
        let vb = vb.to_dtype(DType::F32);
        let weight = vb.pp("c").get((out_c, in_c / groups, k, k), "weight")?;
        let bn = BatchNorm::new(out_c, eps, vb.pp("bn"))?;
        let cfg = Conv2dConfig {
            padding,
            stride,
            dilation: 1,
            groups,
            cudnn_fwd_algo: None,
        };
        Ok(Self {
            weight,
            bn,
            cfg,
            dtype,
        })
    }

    /// Folded weight and bias in f64: `w * scale[o]` and `shift`.
    fn fold_f64(&self) -> Result<(Tensor, Tensor)> {
        let (scale, shift) = self.bn.scale_shift()?;
        let o = scale.dim(0)?;
        let w = self
            .weight
            .to_dtype(DType::F64)?
            .broadcast_mul(&scale.reshape((o, 1, 1, 1))?)?;
        Ok((w, shift))
    }

    fn build(self, fold: bool, opts: &ModelOptions) -> Result<ConvNorm> {
        let dt = self.dtype;
        let tuner = opts.conv_tuner.clone();
        if fold {
            let (w, b) = self.fold_f64()?;
            let conv = Conv2d::from_parts(w.to_dtype(dt)?, Some(b.to_dtype(dt)?), self.cfg, tuner)?;
            Ok(ConvNorm::Folded(conv))
        } else {
            let conv = Conv2d::from_parts(self.weight.to_dtype(dt)?, None, self.cfg, tuner)?;
            Ok(ConvNorm::Unfolded { conv, bn: self.bn })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_norm(
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    eps: f64,
    fold: bool,
    opts: &ModelOptions,
    vb: VarBuilder,
) -> Result<ConvNorm> {
    ConvNormParts::load(in_c, out_c, k, stride, padding, groups, eps, vb)?.build(fold, opts)
}

impl Module for ConvNorm {
    /// x: [B, Cin, H, W] -> [B, Cout, H', W']
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            ConvNorm::Folded(conv) => conv.forward(x),
            ConvNorm::Unfolded { conv, bn } => bn.forward(&conv.forward(x)?),
        }
    }
}

/// timm `RepVggDw`: `conv(x) + conv1(x) + x` (legacy: both branches are `ConvNorm`, no final BN;
/// otherwise `conv1` is a biased depthwise conv and a BatchNorm follows the sum).
#[derive(Debug, Clone)]
enum TokenMixer {
    /// Everything collapsed into one depthwise k x k convolution.
    Fused(Conv2d),
    Unfused {
        conv: ConvNorm,
        conv1: Conv2dOrNorm,
        bn: Option<BatchNorm>,
    },
}

#[derive(Debug, Clone)]
enum Conv2dOrNorm {
    Norm(ConvNorm),
    Plain(Conv2d),
}

impl TokenMixer {
    fn new(
        dim: usize,
        k: usize,
        legacy: bool,
        eps: f64,
        fold: bool,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        if k.is_multiple_of(2) {
            candle_core::bail!("RepViT kernel_size must be odd, got {k}");
        }
        let pad = (k - 1) / 2;
        let conv = ConvNormParts::load(dim, dim, k, 1, pad, dim, eps, vb.pp("conv"))?;
        let dw1 = Conv2dConfig {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: dim,
            cudnn_fwd_algo: None,
        };
        if !fold {
            let conv1 = if legacy {
                Conv2dOrNorm::Norm(conv_norm(
                    dim,
                    dim,
                    1,
                    1,
                    0,
                    dim,
                    eps,
                    false,
                    opts,
                    vb.pp("conv1"),
                )?)
            } else {
                Conv2dOrNorm::Plain(crate::nn::conv::conv2d(
                    dim,
                    dim,
                    1,
                    dw1,
                    opts,
                    vb.pp("conv1"),
                )?)
            };
            let bn = if legacy {
                None
            } else {
                Some(BatchNorm::new(dim, eps, vb.pp("bn"))?)
            };
            return Ok(TokenMixer::Unfused {
                conv: conv.build(false, opts)?,
                conv1,
                bn,
            });
        }
        let dt = conv.dtype;
        let dev = conv.weight.device().clone();
        // k x k branch
        let (w, b) = conv.fold_f64()?;
        // 1x1 branch, as [dim] weights and bias
        let (w1, b1) = if legacy {
            let c1 = ConvNormParts::load(dim, dim, 1, 1, 0, dim, eps, vb.pp("conv1"))?;
            c1.fold_f64()?
        } else {
            let vb1 = vb.pp("conv1").to_dtype(DType::F32);
            let w1 = vb1.get((dim, 1, 1, 1), "weight")?.to_dtype(DType::F64)?;
            let b1 = vb1.get(dim, "bias")?.to_dtype(DType::F64)?;
            (w1, b1)
        };
        // The 1x1 kernel and the identity both sit at the centre tap of the k x k kernel.
        let centre = (w1.reshape(dim)? + 1.0)?;
        let mut onehot = vec![0f64; k * k];
        onehot[pad * k + pad] = 1.0;
        let onehot = Tensor::from_vec(onehot, (1, 1, k, k), &dev)?;
        let w = w.add(&centre.reshape((dim, 1, 1, 1))?.broadcast_mul(&onehot)?)?;
        let b = b.add(&b1)?;
        let (w, b) = if legacy {
            (w, b)
        } else {
            let (s, t) =
                BatchNorm::new(dim, eps, vb.pp("bn").to_dtype(DType::F32))?.scale_shift()?;
            let w = w.broadcast_mul(&s.reshape((dim, 1, 1, 1))?)?;
            let b = b.mul(&s)?.add(&t)?;
            (w, b)
        };
        let cfg = Conv2dConfig {
            padding: pad,
            stride: 1,
            dilation: 1,
            groups: dim,
            cudnn_fwd_algo: None,
        };
        let fused = Conv2d::from_parts(
            w.to_dtype(dt)?,
            Some(b.to_dtype(dt)?),
            cfg,
            opts.conv_tuner.clone(),
        )?;
        Ok(TokenMixer::Fused(fused))
    }
}

impl Module for TokenMixer {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            TokenMixer::Fused(conv) => conv.forward(x),
            TokenMixer::Unfused { conv, conv1, bn } => {
                let y1 = match conv1 {
                    Conv2dOrNorm::Norm(c) => c.forward(x)?,
                    Conv2dOrNorm::Plain(c) => c.forward(x)?,
                };
                let y = ((conv.forward(x)? + y1)? + x)?;
                match bn {
                    Some(bn) => bn.forward(&y),
                    None => Ok(y),
                }
            }
        }
    }
}

/// timm `make_divisible(v, 8, round_limit=0)`: the SE reduced width.
fn se_channels(c: usize, ratio: f64) -> usize {
    let v = c as f64 * ratio;
    (((v + 4.0) as usize) / 8 * 8).max(8)
}

/// timm `SqueezeExcite`: `x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`, 1x1 convs with bias.
#[derive(Debug, Clone)]
struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl SqueezeExcite {
    fn new(c: usize, ratio: f64, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let rd = se_channels(c, ratio);
        let cfg = Conv2dConfig::default();
        Ok(Self {
            fc1: crate::nn::conv::conv2d(c, rd, 1, cfg, opts, vb.pp("fc1"))?,
            fc2: crate::nn::conv::conv2d(rd, c, 1, cfg, opts, vb.pp("fc2"))?,
        })
    }
}

impl Module for SqueezeExcite {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.mean_keepdim(3)?.mean_keepdim(2)?;
        let s = self.fc2.forward(&self.fc1.forward(&s)?.relu()?)?;
        x.broadcast_mul(&candle_nn::ops::sigmoid(&s)?)
    }
}

/// timm `RepVitMlp`: `conv2(gelu(conv1(x)))` with `ConvNorm`s.
#[derive(Debug, Clone)]
struct RepVitMlp {
    conv1: ConvNorm,
    conv2: ConvNorm,
}

impl RepVitMlp {
    fn new(
        dim: usize,
        hidden: usize,
        eps: f64,
        fold: bool,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv1: conv_norm(dim, hidden, 1, 1, 0, 1, eps, fold, opts, vb.pp("conv1"))?,
            conv2: conv_norm(hidden, dim, 1, 1, 0, 1, eps, fold, opts, vb.pp("conv2"))?,
        })
    }
}

impl Module for RepVitMlp {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv2.forward(&self.conv1.forward(x)?.gelu_erf()?)
    }
}

/// timm `RepViTBlock`: `y = se(token_mixer(x)); y + channel_mixer(y)`.
#[derive(Debug, Clone)]
struct RepVitBlock {
    token_mixer: TokenMixer,
    se: Option<SqueezeExcite>,
    channel_mixer: RepVitMlp,
}

impl RepVitBlock {
    fn new(
        dim: usize,
        use_se: bool,
        c: &RepVitConfig,
        fold: bool,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let eps = c.bn_eps;
        let token_mixer = TokenMixer::new(
            dim,
            c.kernel_size,
            c.legacy,
            eps,
            fold,
            opts,
            vb.pp("token_mixer"),
        )?;
        let se = if use_se {
            Some(SqueezeExcite::new(dim, c.se_ratio, opts, vb.pp("se"))?)
        } else {
            None
        };
        let hidden = mlp_hidden(dim, c.mlp_ratio)?;
        let channel_mixer = RepVitMlp::new(dim, hidden, eps, fold, opts, vb.pp("channel_mixer"))?;
        Ok(Self {
            token_mixer,
            se,
            channel_mixer,
        })
    }
}

impl Module for RepVitBlock {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = self.token_mixer.forward(x)?;
        if let Some(se) = &self.se {
            y = se.forward(&y)?;
        }
        y.add(&self.channel_mixer.forward(&y)?)
    }
}

fn mlp_hidden(dim: usize, ratio: f64) -> Result<usize> {
    let h = dim as f64 * ratio;
    if !(h >= 1.0 && h.fract() == 0.0) {
        candle_core::bail!(
            "RepViT mlp_ratio {ratio} does not give an integer width for {dim} channels"
        );
    }
    Ok(h as usize)
}

/// timm `RepVitDownsample`: `pre_block` (no SE), depthwise k x k stride 2, 1x1 to the new width,
/// then `x + ffn(x)`.
#[derive(Debug, Clone)]
struct RepVitDownsample {
    pre_block: RepVitBlock,
    spatial_downsample: ConvNorm,
    channel_downsample: ConvNorm,
    ffn: RepVitMlp,
}

impl RepVitDownsample {
    fn new(
        in_dim: usize,
        out_dim: usize,
        c: &RepVitConfig,
        fold: bool,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let eps = c.bn_eps;
        let k = c.kernel_size;
        Ok(Self {
            pre_block: RepVitBlock::new(in_dim, false, c, fold, opts, vb.pp("pre_block"))?,
            spatial_downsample: conv_norm(
                in_dim,
                in_dim,
                k,
                2,
                (k - 1) / 2,
                in_dim,
                eps,
                fold,
                opts,
                vb.pp("spatial_downsample"),
            )?,
            channel_downsample: conv_norm(
                in_dim,
                out_dim,
                1,
                1,
                0,
                1,
                eps,
                fold,
                opts,
                vb.pp("channel_downsample"),
            )?,
            ffn: RepVitMlp::new(
                out_dim,
                mlp_hidden(out_dim, c.mlp_ratio)?,
                eps,
                fold,
                opts,
                vb.pp("ffn"),
            )?,
        })
    }
}

impl Module for RepVitDownsample {
    /// x: [B, C, H, W] -> [B, C', ceil(H/2), ceil(W/2)]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.pre_block.forward(x)?;
        let x = self.spatial_downsample.forward(&x)?;
        let x = self.channel_downsample.forward(&x)?;
        x.add(&self.ffn.forward(&x)?)
    }
}

#[derive(Debug, Clone)]
struct RepVitStage {
    downsample: Option<RepVitDownsample>,
    blocks: Vec<RepVitBlock>,
}

/// The RepViT trunk: stem (two stride-2 3x3 `ConvNorm`s with GELU between) and four stages.
#[derive(Debug, Clone)]
pub struct RepVit {
    stem_conv1: ConvNorm,
    stem_conv2: ConvNorm,
    stages: Vec<RepVitStage>,
}

impl RepVit {
    /// Weights under `vb` = `image_encoder.trunk` (this adds `body`); BatchNorms and token mixers
    /// folded.
    pub fn new(c: &RepVitConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        Self::build(c, true, opts, vb)
    }

    /// The same network with every BatchNorm and token-mixer branch kept separate, evaluated as
    /// PyTorch does (for tests of the folding).
    pub fn new_unfolded(c: &RepVitConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        Self::build(c, false, opts, vb)
    }

    fn build(c: &RepVitConfig, fold: bool, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let n = c.embed_dims.len();
        if n == 0 || c.depths.len() != n {
            candle_core::bail!(
                "RepViT needs one depth per stage: {} widths, {} depths",
                n,
                c.depths.len()
            );
        }
        if c.embed_dims.iter().any(|&d| d == 0 || d % 2 != 0) {
            candle_core::bail!(
                "RepViT stage widths must be even and positive: {:?}",
                c.embed_dims
            );
        }
        let vb = vb.pp("body");
        let eps = c.bn_eps;
        let c0 = c.embed_dims[0];
        let stem = vb.pp("stem");
        let stem_conv1 = conv_norm(3, c0 / 2, 3, 2, 1, 1, eps, fold, opts, stem.pp("conv1"))?;
        let stem_conv2 = conv_norm(c0 / 2, c0, 3, 2, 1, 1, eps, fold, opts, stem.pp("conv2"))?;
        let mut stages = Vec::with_capacity(n);
        let mut in_dim = c0;
        for (i, (&dim, &depth)) in c.embed_dims.iter().zip(&c.depths).enumerate() {
            let svb = vb.pp(format!("stages_{i}"));
            let downsample = if i == 0 {
                if dim != in_dim {
                    candle_core::bail!(
                        "RepViT stage 0 width {dim} differs from the stem width {in_dim}"
                    );
                }
                None
            } else {
                Some(RepVitDownsample::new(
                    in_dim,
                    dim,
                    c,
                    fold,
                    opts,
                    svb.pp("downsample"),
                )?)
            };
            let blocks = (0..depth)
                .map(|b| RepVitBlock::new(dim, b % 2 == 0, c, fold, opts, svb.pp("blocks").pp(b)))
                .collect::<Result<Vec<_>>>()?;
            stages.push(RepVitStage { downsample, blocks });
            in_dim = dim;
        }
        Ok(Self {
            stem_conv1,
            stem_conv2,
            stages,
        })
    }

    /// The stage outputs, and every intermediate handed to `tap` under the reference fixture's
    /// names (`trunk.stem`, `trunk.stages.{s}.downsample`, `trunk.stages.{s}.blocks.{b}`).
    /// x: [B, 3, H, W] -> [[B, C0, H/4, W/4], [B, C1, H/8, W/8], [B, C2, H/16, W/16], [B, C3, H/32, W/32]]
    pub fn forward_with_taps(
        &self,
        x: &Tensor,
        tap: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<Vec<Tensor>> {
        let x = self.stem_conv1.forward(x)?.gelu_erf()?;
        let mut x = self.stem_conv2.forward(&x)?;
        tap("trunk.stem", &x);
        let mut outs = Vec::with_capacity(self.stages.len());
        for (s, stage) in self.stages.iter().enumerate() {
            if let Some(ds) = &stage.downsample {
                x = ds.forward(&x)?;
                tap(&format!("trunk.stages.{s}.downsample"), &x);
            }
            for (b, blk) in stage.blocks.iter().enumerate() {
                x = blk.forward(&x)?;
                tap(&format!("trunk.stages.{s}.blocks.{b}"), &x);
            }
            outs.push(x.clone());
        }
        Ok(outs)
    }

    /// x: [B, 3, H, W] -> the four stage features, NCHW, highest resolution first.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.forward_with_taps(x, &mut |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    fn test_cfg() -> RepVitConfig {
        RepVitConfig {
            timm_name: "repvit_m1.dist_in1k".into(),
            embed_dims: vec![8, 16],
            depths: vec![2, 1],
            mlp_ratio: 2.0,
            se_ratio: 0.25,
            kernel_size: 3,
            legacy: true,
            bn_eps: 1e-5,
        }
    }

    /// Seeded random weights for every key the trunk reads, BatchNorm statistics included.
    fn random_weights(c: &RepVitConfig, dev: &Device) -> Result<HashMap<String, Tensor>> {
        use rand::{Rng, SeedableRng};
        // Build once against a VarMap to learn every key and shape the unfolded trunk reads (the
        // folded one reads the same keys).
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, dev);
        RepVit::new_unfolded(c, &ModelOptions::default(), vb.pp("trunk"))?;
        let mut keys: Vec<(String, Vec<usize>)> = vm
            .data()
            .lock()
            .expect("varmap")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
            .collect();
        keys.sort();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut map = HashMap::new();
        for (name, dims) in keys {
            let n: usize = dims.iter().product();
            let leaf = name.rsplit('.').next().unwrap_or("");
            let vals: Vec<f32> = (0..n)
                .map(|_| {
                    let u: f32 = rng.gen_range(-1.0..1.0);
                    match (leaf, dims.len()) {
                        ("running_var", _) => 0.5 + u.abs(),
                        ("weight", 1) => 1.0 + 0.4 * u,
                        _ => 0.5 * u,
                    }
                })
                .collect();
            map.insert(name, Tensor::from_vec(vals, dims, dev)?);
        }
        Ok(map)
    }

    fn check_fold(c: &RepVitConfig) -> Result<()> {
        let dev = Device::Cpu;
        let w = random_weights(c, &dev)?;
        let vb = VarBuilder::from_tensors(w, DType::F32, &dev);
        let folded = RepVit::new(c, &ModelOptions::default(), vb.pp("trunk"))?;
        let unfolded = RepVit::new_unfolded(c, &ModelOptions::default(), vb.pp("trunk"))?;
        let vals: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let x = Tensor::from_vec(vals, (2, 3, 32, 32), &dev)?;
        let a = folded.forward(&x)?;
        let b = unfolded.forward(&x)?;
        assert_eq!(a.len(), 2);
        for (ya, yb) in a.iter().zip(&b) {
            let d = crate::compare::diff(ya, yb).unwrap();
            let (rel, den) = (d.rel_l2(), d.sq_ref);
            eprintln!("legacy={} folded vs unfolded: rel L2 {rel:.2e}", c.legacy);
            assert!(den > 0.0 && rel < 1e-5, "folded vs unfolded rel L2 {rel}");
        }
        assert_eq!(a[0].dims(), &[2, 8, 8, 8]);
        assert_eq!(a[1].dims(), &[2, 16, 4, 4]);
        Ok(())
    }

    #[test]
    fn folded_equals_unfolded() -> Result<()> {
        check_fold(&test_cfg())
    }

    /// Non-legacy token mixer (plain 1x1 branch, BatchNorm after the sum), as other RepViT sizes
    /// use.
    #[test]
    fn folded_equals_unfolded_non_legacy() -> Result<()> {
        let mut c = test_cfg();
        c.legacy = false;
        check_fold(&c)
    }

    #[test]
    fn se_widths_match_timm() {
        // repvit_m1: rd = 16, 24, 48, 96 for 48, 96, 192, 384 channels
        let got: Vec<_> = [48, 96, 192, 384]
            .iter()
            .map(|&c| se_channels(c, 0.25))
            .collect();
        assert_eq!(got, vec![16, 24, 48, 96]);
        assert_eq!(se_channels(16, 0.25), 8);
        assert_eq!(se_channels(128, 0.25), 32);
    }

    /// A half-precision model folds from the checkpoint's f32 values and rounds once: its folded
    /// weights are exactly the f32 fold rounded to bf16.
    #[test]
    fn bf16_model_folds_from_f32_values() -> Result<()> {
        let dev = Device::Cpu;
        let c = test_cfg();
        let w = random_weights(&c, &dev)?;
        let f32_vb = VarBuilder::from_tensors(w.clone(), DType::F32, &dev);
        let bf16_vb = VarBuilder::from_tensors(w, DType::BF16, &dev);
        let a = RepVit::new(&c, &ModelOptions::default(), f32_vb.pp("trunk"))?;
        let b = RepVit::new(&c, &ModelOptions::default(), bf16_vb.pp("trunk"))?;
        let parts = |m: &RepVit| -> Vec<Tensor> {
            let mut v = Vec::new();
            if let ConvNorm::Folded(conv) = &m.stem_conv2 {
                v.push(conv.weight().clone());
                v.extend(conv.bias().cloned());
            }
            if let TokenMixer::Fused(conv) = &m.stages[1].blocks[0].token_mixer {
                v.push(conv.weight().clone());
                v.extend(conv.bias().cloned());
            }
            v
        };
        let (pa, pb) = (parts(&a), parts(&b));
        assert_eq!(pa.len(), 4);
        assert_eq!(pb.len(), 4);
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!(y.dtype(), DType::BF16);
            let want = x.to_dtype(DType::BF16)?.to_dtype(DType::F32)?;
            let diff = (want - y.to_dtype(DType::F32)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert_eq!(diff, 0.0);
        }
        Ok(())
    }

    #[test]
    fn rejects_mismatched_depths() {
        let mut c = test_cfg();
        c.depths = vec![1];
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        assert!(RepVit::new(&c, &ModelOptions::default(), vb).is_err());
    }
}
