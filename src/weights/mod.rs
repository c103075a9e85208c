//! Checkpoint handling: the exact state dict each variant needs ([`spec`]), reading original
//! PyTorch and safetensors files ([`reader`]), the HF-transformers key layout ([`hf_layout`]),
//! validated conversion to safetensors ([`convert`]), loading for inference ([`load`]) and hub
//! download ([`hub`]).

pub mod convert;
pub mod hf_layout;
pub mod hub;
pub mod load;
pub mod random;
pub mod reader;
pub mod spec;

pub use convert::{convert, ConvertReport, FORMAT_VERSION};
pub use load::{inspect_converted, load_var_builder};
pub use spec::{expected_tensors, param_count, TensorKind, TensorSpec};
