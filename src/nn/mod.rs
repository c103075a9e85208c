//! Layers shared by SAM 2.1 and EdgeTAM: attention, RoPE, position encodings, norms,
//! interpolation and the convolution op.

pub mod attention;
pub mod conv;
pub mod interpolate;
pub mod mlp;
pub mod norm;
pub mod position_encoding;
pub mod rope;
