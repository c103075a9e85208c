//! Checkpoint handling: the exact state dict each variant needs ([`spec`]), reading original
//! PyTorch and safetensors files ([`reader`]), the HF-transformers key layout ([`hf_layout`]),
//! validated conversion to safetensors ([`convert`]), loading for inference ([`load`]) and hub
//! download ([`hub`]).

pub mod hf_layout;
pub mod reader;
pub mod spec;

pub use spec::{expected_tensors, param_count, TensorKind, TensorSpec};
