//! Video tracking: frame sources, mask post-processing, memory bank, the features a session
//! keeps, one frame of one or several objects, sessions, and prompt steps of several objects.
pub mod features;
pub mod frames;
pub mod memory_bank;
pub mod postprocess;
pub mod prompts;
pub mod session;
pub mod step;
