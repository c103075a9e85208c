//! CUDA device probe, memory control and the convolution engine. Everything that touches the
//! driver is behind the `cuda` feature (cuDNN behind `cudnn`); a CPU build compiles the same API,
//! reports the host only, never has device memory, and keeps an empty tuning table.

#[cfg(feature = "cudnn")]
pub mod cudnn_conv;
pub mod memory;
pub mod probe;
pub mod tuning;
