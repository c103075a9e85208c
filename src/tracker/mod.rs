//! Video tracking: frame sources, mask post-processing, memory bank and sessions.
pub mod frames;
pub mod memory_bank;
pub mod postprocess;
pub mod session;
