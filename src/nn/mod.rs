//! Layers shared by SAM 2.1 and EdgeTAM: attention, RoPE, position encodings, norms,
//! interpolation and the convolution op.

pub mod mlp;
pub mod norm;
pub mod position_encoding;
