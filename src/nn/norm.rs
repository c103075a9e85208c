//! Normalisation layers: `LayerNorm2d` (channel-first LayerNorm of the SAM code) and a helper for
//! `nn.LayerNorm` with an explicit epsilon.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `LayerNorm2d`: normalises over channels of `[B, C, H, W]` with the biased variance.
#[derive(Debug, Clone)]
pub struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    /// From its tensors (`weight` and `bias` [C]).
    pub fn from_parts(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }

    pub fn new(channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            eps,
        })
    }
}

impl LayerNorm2d {
    /// `gelu_erf(self.forward(x))`: one kernel on CUDA (`crate::cuda::layer_norm2d`), the two
    /// steps elsewhere.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(y) = self.fused(x, true) {
            return y;
        }
        self.forward(x)?.gelu_erf()
    }

    /// The CUDA kernel, where it takes `x`.
    #[cfg(feature = "cuda")]
    fn fused(&self, x: &Tensor, gelu: bool) -> Option<Result<Tensor>> {
        let (w, b) = (&self.weight, &self.bias);
        crate::cuda::layer_norm2d::supports(x, w, b)
            .then(|| crate::cuda::layer_norm2d::layer_norm2d(x, w, b, self.eps, gelu))
    }

    /// The unfused computation (every device): the reference of the CUDA kernel's check.
    pub fn forward_unfused(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let u = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&u)?;
        let s = xc.sqr()?.mean_keepdim(1)?;
        let xn = xc.broadcast_div(&(s + self.eps)?.sqrt()?)?;
        let c = self.weight.dim(0)?;
        let w = self.weight.to_dtype(DType::F32)?.reshape((1, c, 1, 1))?;
        let b = self.bias.to_dtype(DType::F32)?.reshape((1, c, 1, 1))?;
        xn.broadcast_mul(&w)?.broadcast_add(&b)?.to_dtype(dtype)
    }
}

impl Module for LayerNorm2d {
    /// x: [B, C, H, W] -> [B, C, H, W]; one kernel on CUDA (`crate::cuda::layer_norm2d`, f32
    /// arithmetic as below, sums in another order), [`LayerNorm2d::forward_unfused`] elsewhere.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(y) = self.fused(x, false) {
            return y;
        }
        self.forward_unfused(x)
    }
}

/// `nn.LayerNorm(dim, eps)` over the last axis.
pub fn layer_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<candle_nn::LayerNorm> {
    candle_nn::layer_norm(
        dim,
        candle_nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
        vb,
    )
}
