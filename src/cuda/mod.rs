//! CUDA device probe and memory control. Everything that touches the driver is behind the `cuda`
//! feature; a CPU build compiles the same API, reports the host only, and never has device memory.
//! Convolution tuning (cuDNN algorithm search) is not implemented in this build.

pub mod memory;
pub mod probe;
