//! The convolution layers every network in the crate goes through.
//!
//! [`Conv2d`] holds a PyTorch-layout weight `[out, in/groups, kh, kw]` and an optional bias
//! `[out]`. Dense and ordinary grouped convolutions run candle's `conv2d`; depthwise convolutions
//! (`groups == in == out`) run as a single sum over the `kh*kw` taps of shifted input slices times
//! the per-channel tap weights, because candle's grouped conv chunks the input into one conv per
//! group, which is very slow for 256 groups of one channel.
//!
//! On CUDA devices (cudnn builds) every [`Conv2d`] goes through vosbench's own cuDNN engine
//! (`crate::cuda::cudnn_conv`) instead: cached descriptors and algorithms, the workspace limit,
//! native groups (depthwise included) and the bias added in place. Each [`Conv2d`] holds the
//! [`ConvTuner`] of the model it belongs to (given at build time through [`ModelOptions`]), whose
//! options and choices the engine follows.
//!
//! [`ConvTranspose2d`] holds a PyTorch-layout weight `[in, out, kh, kw]`. When the kernel equals
//! the stride and there is no padding (the mask decoder's 2x2 stride-2 upscaling), output patches do
//! not overlap and the layer is one matmul followed by a pixel-shuffle-like permutation.

use crate::cuda::tuning::ConvTuner;
use crate::nn::ModelOptions;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use std::sync::Arc;

/// A 2D convolution with a PyTorch-layout weight.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dConfig,
    /// The algorithm choices this convolution runs with on CUDA (cudnn builds).
    tuner: Arc<ConvTuner>,
}

impl Conv2d {
    /// Build from tensors already in memory (e.g. a convolution with a BatchNorm folded in).
    /// weight: [out, in/groups, kh, kw], bias: [out].
    pub fn from_parts(
        weight: Tensor,
        bias: Option<Tensor>,
        config: Conv2dConfig,
        tuner: Arc<ConvTuner>,
    ) -> Result<Self> {
        let (out_c, _, _, _) = weight.dims4()?;
        if config.groups == 0 || out_c % config.groups != 0 {
            candle_core::bail!(
                "conv2d: {out_c} output channels do not split into {} groups",
                config.groups
            )
        }
        if config.stride == 0 || config.dilation == 0 {
            candle_core::bail!("conv2d: stride and dilation must be positive")
        }
        if let Some(b) = &bias {
            let n = b.dims1()?;
            if n != out_c {
                candle_core::bail!("conv2d: bias has {n} elements for {out_c} output channels")
            }
        }
        Ok(Self {
            weight,
            bias,
            config,
            tuner,
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// The tuner whose choices this convolution runs with on CUDA.
    pub fn tuner(&self) -> &Arc<ConvTuner> {
        &self.tuner
    }

    /// True for a depthwise convolution (one input and one output channel per group).
    pub fn is_depthwise(&self) -> bool {
        let out_c = self.weight.dims()[0];
        let in_per_group = self.weight.dims()[1];
        self.config.groups > 1 && self.config.groups == out_c && in_per_group == 1
    }

    /// Depthwise path. x: [B, C, H, W] -> [B, C, H', W'].
    fn forward_depthwise(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (out_c, _, kh, kw) = self.weight.dims4()?;
        if c != out_c {
            candle_core::bail!("depthwise conv2d: input has {c} channels, weight expects {out_c}")
        }
        let Conv2dConfig {
            padding: p,
            stride: s,
            dilation: d,
            ..
        } = self.config;
        let hp = h + 2 * p;
        let wp = w + 2 * p;
        let span_h = d * (kh - 1) + 1;
        let span_w = d * (kw - 1) + 1;
        if hp < span_h || wp < span_w {
            candle_core::bail!(
                "depthwise conv2d: kernel {kh}x{kw} (dilation {d}) larger than padded input {hp}x{wp}"
            )
        }
        let ho = (hp - span_h) / s + 1;
        let wo = (wp - span_w) / s + 1;
        // Pad the borders, plus enough extra at the bottom/right that every tap can take a slice of
        // exactly `s * out` rows/columns and keep every s-th one.
        let extra_h = (d * (kh - 1) + s * ho).saturating_sub(hp);
        let extra_w = (d * (kw - 1) + s * wo).saturating_sub(wp);
        let xp = if p > 0 || extra_h > 0 || extra_w > 0 {
            x.pad_with_zeros(2, p, p + extra_h)?
                .pad_with_zeros(3, p, p + extra_w)?
        } else {
            x.clone()
        };
        let taps = self.weight.reshape((c, kh * kw))?;
        let mut acc: Option<Tensor> = None;
        for i in 0..kh {
            let rows = xp.narrow(2, i * d, s * ho)?;
            let rows = if s > 1 {
                rows.reshape((b, c, ho, s, wp + extra_w))?
                    .narrow(3, 0, 1)?
                    .squeeze(3)?
            } else {
                rows
            };
            for j in 0..kw {
                let win = rows.narrow(3, j * d, s * wo)?;
                let win = if s > 1 {
                    win.reshape((b, c, ho, wo, s))?
                        .narrow(4, 0, 1)?
                        .squeeze(4)?
                } else {
                    win
                };
                let wt = taps.narrow(1, i * kw + j, 1)?.reshape((1, c, 1, 1))?;
                let term = win.broadcast_mul(&wt)?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => (a + term)?,
                });
            }
        }
        let out = match acc {
            Some(a) => a,
            None => candle_core::bail!("depthwise conv2d: empty kernel"),
        };
        match &self.bias {
            None => Ok(out),
            Some(bias) => out.broadcast_add(&bias.reshape((1, c, 1, 1))?),
        }
    }
}

impl Module for Conv2d {
    /// x: [B, Cin, H, W] -> [B, Cout, H', W']
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if crate::nn::flops::counting() {
            if let (Ok((n, c, h, w)), Ok((k, _, r, s))) = (x.dims4(), self.weight.dims4()) {
                let cfg = self.config;
                if cfg.stride > 0 && cfg.groups > 0 {
                    let shape = crate::cuda::tuning::ConvShape {
                        n,
                        c,
                        h,
                        w,
                        k,
                        r,
                        s,
                        pad: cfg.padding,
                        stride: cfg.stride,
                        dilation: cfg.dilation,
                        groups: cfg.groups,
                        dtype: x.dtype().as_str().into(),
                    };
                    crate::nn::flops::add(crate::nn::flops::Kind::Conv, 2 * shape.macs());
                }
            }
        }
        #[cfg(feature = "cudnn")]
        if x.device().is_cuda() {
            // vosbench's cuDNN engine: cached plans, tuned or budgeted algorithms, native groups.
            let c = self.config;
            let op = crate::cuda::cudnn_conv::CudnnConv2d {
                pad: c.padding,
                stride: c.stride,
                dilation: c.dilation,
                groups: c.groups,
                tuner: &self.tuner,
            };
            let x = crate::nn::ContiguousExt::contiguous_fast(x)?;
            return match &self.bias {
                Some(b) => x.apply_op3_no_bwd(&self.weight, b, &op),
                None => x.apply_op2_no_bwd(&self.weight, &op),
            };
        }
        if self.is_depthwise() {
            return self.forward_depthwise(x);
        }
        let c = self.config;
        let y = x.conv2d_with_algo(
            &self.weight,
            c.padding,
            c.stride,
            c.dilation,
            c.groups,
            c.cudnn_fwd_algo,
        )?;
        match &self.bias {
            None => Ok(y),
            Some(bias) => {
                let n = bias.dims1()?;
                y.broadcast_add(&bias.reshape((1, n, 1, 1))?)
            }
        }
    }
}

/// A square-kernel convolution with weight `[out, in/groups, k, k]` and bias `[out]`.
pub fn conv2d(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    opts: &ModelOptions,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let groups = cfg.groups.max(1);
    let weight = vb.get((out_c, in_c / groups, kernel, kernel), "weight")?;
    let bias = vb.get(out_c, "bias")?;
    Conv2d::from_parts(weight, Some(bias), cfg, opts.conv_tuner.clone())
}

/// A square-kernel convolution with weight `[out, in/groups, k, k]` and no bias.
pub fn conv2d_no_bias(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    opts: &ModelOptions,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let groups = cfg.groups.max(1);
    let weight = vb.get((out_c, in_c / groups, kernel, kernel), "weight")?;
    Conv2d::from_parts(weight, None, cfg, opts.conv_tuner.clone())
}

/// A 2D transposed convolution (padding 0, no output padding, dilation 1), PyTorch layout.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    /// [in, out, kh, kw]
    weight: Tensor,
    /// [out]
    bias: Option<Tensor>,
    stride: usize,
}

impl ConvTranspose2d {
    /// weight: [in, out, kh, kw], bias: [out].
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, stride: usize) -> Result<Self> {
        let (_, out_c, _, _) = weight.dims4()?;
        if stride == 0 {
            candle_core::bail!("conv_transpose2d: stride must be positive")
        }
        if let Some(b) = &bias {
            let n = b.dims1()?;
            if n != out_c {
                candle_core::bail!(
                    "conv_transpose2d: bias has {n} elements for {out_c} output channels"
                )
            }
        }
        Ok(Self {
            weight,
            bias,
            stride,
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Non-overlapping case (kernel == stride): one matmul, then interleave the kernel taps.
    fn forward_patches(&self, x: &Tensor) -> Result<Tensor> {
        let (b, cin, h, w) = x.dims4()?;
        let (_, cout, kh, kw) = self.weight.dims4()?;
        // [B*H*W, Cin] @ [Cin, Cout*kh*kw]
        let xs = x.permute((0, 2, 3, 1))?.reshape((b * h * w, cin))?;
        let wm = self.weight.reshape((cin, cout * kh * kw))?;
        let y = xs.matmul(&wm)?;
        let y = y
            .reshape((b, h, w, cout, kh, kw))?
            .permute((0, 3, 1, 4, 2, 5))?
            .reshape((b, cout, h * kh, w * kw))?;
        match &self.bias {
            None => Ok(y),
            Some(bias) => y.broadcast_add(&bias.reshape((1, cout, 1, 1))?),
        }
    }
}

impl Module for ConvTranspose2d {
    /// x: [B, Cin, H, W] -> [B, Cout, (H-1)*s + kh, (W-1)*s + kw]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, cin, h, w) = x.dims4()?;
        let (cin_w, cout, kh, kw) = self.weight.dims4()?;
        // every input pixel times every tap of every output channel
        crate::nn::flops::add_matmul(crate::nn::flops::Kind::Conv, b, h * w, cin, cout * kh * kw);
        if cin != cin_w {
            candle_core::bail!("conv_transpose2d: input has {cin} channels, weight expects {cin_w}")
        }
        if kh == self.stride && kw == self.stride {
            return self.forward_patches(x);
        }
        let y = x.conv_transpose2d(&self.weight, 0, 0, self.stride, 1)?;
        match &self.bias {
            None => Ok(y),
            Some(bias) => {
                let n = bias.dims1()?;
                y.broadcast_add(&bias.reshape((1, n, 1, 1))?)
            }
        }
    }
}

/// A square-kernel transposed convolution with weight `[in, out, k, k]` and bias `[out]`.
pub fn conv_transpose2d(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let weight = vb.get((in_c, out_c, kernel, kernel), "weight")?;
    let bias = vb.get(out_c, "bias")?;
    ConvTranspose2d::from_parts(weight, Some(bias), stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        crate::compare::max_abs_diff(a, b).unwrap()
    }

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // Deterministic pseudo-random values in [-1, 1) without depending on a global RNG.
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn depthwise_equals_candle_grouped_conv() {
        let cases = [
            // (c, h, w, k, pad, stride, dilation)
            (8usize, 13usize, 11usize, 7usize, 3usize, 1usize, 1usize),
            (6, 16, 16, 3, 1, 2, 1),
            (5, 15, 9, 3, 1, 2, 1),
            (4, 10, 12, 1, 0, 1, 1),
            (3, 12, 12, 3, 2, 1, 2),
            (4, 9, 14, 5, 0, 3, 1),
        ];
        for (n, &(c, h, w, k, p, s, d)) in cases.iter().enumerate() {
            let x = rand(&[2, c, h, w], 10 + n as u64);
            let wt = rand(&[c, 1, k, k], 100 + n as u64);
            let bias = rand(&[c], 200 + n as u64);
            let cfg = Conv2dConfig {
                padding: p,
                stride: s,
                dilation: d,
                groups: c,
                ..Default::default()
            };
            let conv = Conv2d::from_parts(wt.clone(), Some(bias.clone()), cfg, Default::default())
                .unwrap();
            assert!(conv.is_depthwise());
            let got = conv.forward(&x).unwrap();
            let want = x
                .conv2d(&wt, p, s, d, c)
                .unwrap()
                .broadcast_add(&bias.reshape((1, c, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(got.dims(), want.dims(), "case {n}");
            let e = max_abs_diff(&got, &want);
            assert!(e < 1e-5, "case {n}: max abs diff {e}");
        }
    }

    #[test]
    fn dense_conv_adds_bias() {
        let x = rand(&[1, 3, 9, 9], 1);
        let wt = rand(&[4, 3, 3, 3], 2);
        let bias = rand(&[4], 3);
        let cfg = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let got = Conv2d::from_parts(wt.clone(), Some(bias.clone()), cfg, Default::default())
            .unwrap()
            .forward(&x)
            .unwrap();
        let want = x
            .conv2d(&wt, 1, 2, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-6);
        assert_eq!(got.dims(), &[1, 4, 5, 5]);
    }

    #[test]
    fn transposed_patch_path_equals_candle() {
        let x = rand(&[2, 6, 5, 7], 4);
        let wt = rand(&[6, 3, 2, 2], 5);
        let bias = rand(&[3], 6);
        let layer = ConvTranspose2d::from_parts(wt.clone(), Some(bias.clone()), 2).unwrap();
        let got = layer.forward(&x).unwrap();
        let want = x
            .conv_transpose2d(&wt, 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(got.dims(), &[2, 3, 10, 14]);
        assert!(max_abs_diff(&got, &want) < 1e-5);
        // Overlapping case goes through candle's kernel.
        let wt3 = rand(&[6, 3, 3, 3], 7);
        let layer = ConvTranspose2d::from_parts(wt3.clone(), None, 2).unwrap();
        let got = layer.forward(&x).unwrap();
        let want = x.conv_transpose2d(&wt3, 0, 0, 2, 1).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-6);
    }

    #[test]
    fn mis_shaped_weight_names_the_key() {
        let mut map = std::collections::HashMap::new();
        map.insert(
            "c.weight".to_string(),
            Tensor::zeros((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        map.insert(
            "c.bias".to_string(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
        let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        let opts = ModelOptions::default();
        let err = conv2d(3, 5, 3, Default::default(), &opts, vb.pp("c"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.weight"), "{err}");
    }
}
