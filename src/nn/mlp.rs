//! `MLP` of `sam2/modeling/sam2_utils.py`: `num_layers` linear layers with ReLU between them and
//! an optional sigmoid on the output.

use crate::nn::linear::{Activation, Linear};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    sigmoid_output: bool,
}

impl Mlp {
    /// Weights under `layers.{i}`.
    pub fn new(
        input_dim: usize,
        hidden_dim: usize,
        output_dim: usize,
        num_layers: usize,
        sigmoid_output: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(num_layers);
        for i in 0..num_layers {
            let n_in = if i == 0 { input_dim } else { hidden_dim };
            let n_out = if i + 1 == num_layers {
                output_dim
            } else {
                hidden_dim
            };
            layers.push(crate::nn::linear::linear(
                n_in,
                n_out,
                vb.pp("layers").pp(i),
            )?);
        }
        Ok(Self {
            layers,
            sigmoid_output,
        })
    }
}

impl Module for Mlp {
    /// x: [..., input_dim] -> [..., output_dim]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = if i + 1 < n {
                l.forward_act(&x, Activation::Relu)?
            } else {
                l.forward(&x)?
            };
        }
        if self.sigmoid_output {
            x = candle_nn::ops::sigmoid(&x)?;
        }
        Ok(x)
    }
}
