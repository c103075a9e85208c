//! SAM 2.1 and EdgeTAM in candle. One file per PyTorch module of `sam2/modeling`, with the same
//! names, so a checkpoint key such as `memory_attention.layers.0.cross_attn_image.q_proj` reads
//! straight from the file tree. EdgeTAM's parts sit where the official code keeps them: its
//! RepViT trunk among the other trunks in [`backbones`], its spatial perceiver in [`perceiver`];
//! every other module is shared.

pub mod backbones;
pub mod mask_decoder;
pub mod memory_attention;
pub mod memory_encoder;
pub mod perceiver;
pub mod prompt_encoder;
pub mod sam2_base;
pub mod transformer;
