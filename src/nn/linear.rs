//! `nn.Linear` with the bias added by vosbench's in-place CUDA kernel (`crate::cuda::bias_add`)
//! where it applies, and by candle's broadcast add everywhere else (the CPU path is unchanged).
//! Same weight keys (`weight` [out, in], `bias` [out]) and the same matmul as `candle_nn::Linear`.

use crate::nn::ContiguousExt;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct Linear {
    /// `candle_nn::Linear` without its bias: the matmul for any input rank.
    inner: candle_nn::Linear,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            inner: candle_nn::Linear::new(weight, None),
            bias,
        }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `x @ weight^T` (counted in `crate::nn::flops`).
    fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        let (n, k) = self.inner.weight().dims2()?;
        crate::nn::flops::add_matmul(
            crate::nn::flops::Kind::Matmul,
            1,
            x.elem_count() / k.max(1),
            k,
            n,
        );
        self.inner.forward(&x.contiguous_fast()?)
    }
}

/// Weights `weight` [out_dim, in_dim] and `bias` [out_dim] under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear(in_dim, out_dim, vb)?;
    Ok(Linear::new(l.weight().clone(), l.bias().cloned()))
}

/// Weight `weight` [out_dim, in_dim] under `vb`, no bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear_no_bias(in_dim, out_dim, vb)?;
    Ok(Linear::new(l.weight().clone(), None))
}

/// The activation right after a Linear, for [`Linear::forward_act`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// exact (erf) GELU, `nn.GELU()`
    GeluErf,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::GeluErf => x.gelu_erf(),
        }
    }
}

/// `y + b` over the last axis, in place on CUDA when the fast kernel applies (y must be a fresh
/// tensor: its storage is modified).
fn add_bias(y: Tensor, b: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::cuda::bias_add::supports(&y, b) {
        crate::cuda::bias_add::add_bias_inplace(&y, b)?;
        return Ok(y);
    }
    y.broadcast_add(b)
}

impl Linear {
    /// `act(self.forward(x))`. On CUDA the bias and the activation run as one pass over the
    /// output (`crate::cuda::bias_add`, the same rounding as the separate ops); elsewhere, and
    /// where that kernel does not apply, as the two ops.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let y = self.matmul(x)?;
        #[cfg(feature = "cuda")]
        if let Some(b) = &self.bias {
            if crate::cuda::bias_add::supports_epilogue(&y, b) {
                let e = match act {
                    Activation::Relu => crate::cuda::bias_add::Epilogue::Relu,
                    Activation::GeluErf => crate::cuda::bias_add::Epilogue::GeluErf,
                };
                crate::cuda::bias_add::add_bias_act_inplace(&y, b, e)?;
                return Ok(y);
            }
        }
        let y = match &self.bias {
            Some(b) => add_bias(y, b)?,
            None => y,
        };
        act.apply(&y)
    }
}

impl Module for Linear {
    /// x: [.., in_dim] -> [.., out_dim]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle's CUDA matmul takes only row-contiguous operands: a token sliced out of a batch
        // (the mask decoder's per-object tokens) is copied first; a contiguous input is not.
        let y = self.matmul(x)?;
        match &self.bias {
            Some(b) => add_bias(y, b),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn counts_its_product() -> Result<()> {
        // [2, 3, 4] inputs, 4 -> 6: 6 rows of 4 times 6 outputs, 2 FLOPs a multiply-add.
        let dev = Device::Cpu;
        let lin = Linear::new(Tensor::ones((6, 4), DType::F32, &dev)?, None);
        let c = crate::nn::flops::FlopCounter::start();
        lin.forward(&Tensor::ones((2, 3, 4), DType::F32, &dev)?)?;
        lin.forward_act(&Tensor::ones((5, 4), DType::F32, &dev)?, Activation::Relu)?;
        assert_eq!(c.take().matmul, 2 * 6 * 4 * 6 + 2 * 5 * 4 * 6);
        Ok(())
    }

    #[test]
    fn forward_equals_candle_linear() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 12., &dev)?.reshape((3, 4))?;
        let b = Tensor::new(&[0.5f32, -1., 2.], &dev)?;
        let x = Tensor::arange(0f32, 24., &dev)?.reshape((2, 3, 4))?;
        let ours = Linear::new(w.clone(), Some(b.clone())).forward(&x)?;
        let theirs = candle_nn::Linear::new(w.clone(), Some(b.clone())).forward(&x)?;
        assert_eq!(ours.to_vec3::<f32>()?, theirs.to_vec3::<f32>()?);
        for act in [Activation::Relu, Activation::GeluErf] {
            let fused = Linear::new(w.clone(), Some(b.clone())).forward_act(&x, act)?;
            let separate = act.apply(&ours)?;
            assert_eq!(fused.to_vec3::<f32>()?, separate.to_vec3::<f32>()?);
        }
        let nb = Linear::new(w.clone(), None).forward(&x)?;
        let want = candle_nn::Linear::new(w, None).forward(&x)?;
        assert_eq!(nb.to_vec3::<f32>()?, want.to_vec3::<f32>()?);
        let vb = VarBuilder::zeros(DType::F32, &dev);
        assert!(linear(4, 3, vb.clone())?.bias().is_some());
        assert!(linear_no_bias(4, 3, vb)?.bias().is_none());
        Ok(())
    }
}
