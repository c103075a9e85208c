//! SAM 2.1 in candle. One file per PyTorch module of `sam2/modeling`, with the same names, so a
//! checkpoint key such as `memory_attention.layers.0.cross_attn_image.q_proj` reads straight
//! from the file tree.

pub mod hieradet;
pub mod image_encoder;
pub mod mask_decoder;
pub mod memory_attention;
pub mod memory_encoder;
pub mod prompt_encoder;
pub mod sam2_base;
pub mod transformer;
