//! Seeded random weights for `vosbench bench --random-weights`: a VarBuilder backend that makes up
//! every tensor the model asks for, deterministically from (seed, name, shape), scaled so that
//! activations stay finite through every block. Accuracy is meaningless with these weights; they
//! exist so speed and memory can be measured without a checkpoint.
//!
//! Rules, by the last component of the tensor name and its rank:
//! - `running_var` (BatchNorm): uniform in [0.5, 1.5] (positive);
//! - `running_mean`: normal, std 0.1;
//! - `num_batches_tracked`: zero;
//! - rank-1 `weight` (LayerNorm, BatchNorm, LayerNorm2d): 1 ± 0.1 (uniform);
//! - `gamma` (layer scale): 1e-2 · (1 ± 0.1), small as the official init keeps them;
//! - `bias`, `beta` and other rank-1 tensors: normal, std 0.02;
//! - rank ≥ 2 weights: normal with std 1/sqrt(fan_in), fan_in = product of every dim after the
//!   first (Linear [out, in], Conv [out, in/groups, kh, kw]);
//! - embeddings and tokens whose names say so (`pos_embed`, `no_mem_embed`, `maskmem_tpos_enc`,
//!   `*_token*`, `latents`, `*embed*` of any rank): normal, std 0.02.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The random backend; build a VarBuilder with [`random_var_builder`].
#[derive(Debug, Clone, Copy)]
pub struct RandomWeights {
    seed: u64,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// FNV-1a of the name, mixed with the seed and the shape, so each tensor has its own stream.
    fn stream_seed(&self, name: &str, dims: &[usize]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in name.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for &d in dims {
            h ^= d as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// The values of one tensor, as f32 (row-major).
    pub fn values(&self, name: &str, dims: &[usize]) -> Vec<f32> {
        let n: usize = dims.iter().product();
        let mut rng = ChaCha8Rng::seed_from_u64(self.stream_seed(name, dims));
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let lname = name.to_ascii_lowercase();
        let normal = |rng: &mut ChaCha8Rng, std: f32| -> f32 {
            // Box-Muller; u1 in (0, 1] so the log is finite.
            let u1: f32 = 1.0 - rng.gen::<f32>();
            let u2: f32 = rng.gen::<f32>();
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        };
        let uniform = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| lo + (hi - lo) * rng.gen::<f32>();
        let embed_like = lname.contains("embed")
            || lname.contains("token")
            || leaf == "latents"
            || leaf == "latents_2d"
            || lname.contains("tpos_enc");
        (0..n)
            .map(|_| match leaf {
                "running_var" => uniform(&mut rng, 0.5, 1.5),
                "running_mean" => normal(&mut rng, 0.1),
                "num_batches_tracked" => 0.0,
                "gamma" => 1e-2 * uniform(&mut rng, 0.9, 1.1),
                "weight" if dims.len() == 1 => uniform(&mut rng, 0.9, 1.1),
                _ if embed_like && dims.len() != 1 || leaf.contains("embed") => {
                    normal(&mut rng, 0.02)
                }
                _ if dims.len() >= 2 => {
                    let fan_in: usize = dims[1..].iter().product::<usize>().max(1);
                    normal(&mut rng, 1.0 / (fan_in as f32).sqrt())
                }
                _ => normal(&mut rng, 0.02),
            })
            .collect()
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims().to_vec();
        let v = self.values(name, &dims);
        Tensor::from_vec(v, dims, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need the shape of '{name}'")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A VarBuilder whose every tensor is made up by [`RandomWeights`] with `seed`.
pub fn random_var_builder(seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(RandomWeights::new(seed)), dtype, device.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_scaled() {
        let r = RandomWeights::new(7);
        let a = r.values("blocks.0.mlp.layers.0.weight", &[64, 256]);
        assert_eq!(a, r.values("blocks.0.mlp.layers.0.weight", &[64, 256]));
        assert_ne!(
            a,
            RandomWeights::new(8).values("blocks.0.mlp.layers.0.weight", &[64, 256])
        );
        let var = a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32;
        assert!((var * 256.0 - 1.0).abs() < 0.1, "fan-in variance {var}");
        let rv = r.values("bn.running_var", &[32]);
        assert!(rv.iter().all(|&v| (0.5..=1.5).contains(&v)));
        let nw = r.values("norm1.weight", &[32]);
        assert!(nw.iter().all(|&v| (0.9..=1.1).contains(&v)));
    }
}
