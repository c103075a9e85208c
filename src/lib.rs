//! vosbench: SAM 2.1 and EdgeTAM video object segmentation in pure Rust (candle), and a
//! benchmark for small GPUs that measures speed, memory and real J&F without dying of OOM.
//!
//! Layers, from the top down; a module uses only modules listed below it, never one above or
//! beside it (checked by `tests/units/layering.rs`; docs/architecture.md draws it):
//! - [`cli`]: one file per subcommand; parses every flag once; the only place that prints errors.
//! - [`bench`]: the two-phase benchmark (setup, then inference in a fresh process);
//!   [`parity`]: parity with the official code (the hidden `vosbench parity`).
//! - [`tracker`]: video sessions, memory bank, frame sources, hole filling.
//! - [`sam2`]: the networks (SAM 2.1 and EdgeTAM), one file per PyTorch module.
//! - [`nn`]: layers both networks share, and the options a model is built with.
//! - [`exec`]: a session's execution policy (fences, CUDA graphs, profiler), passed down the
//!   forward.
//! - [`profile`], [`weights`], [`eval`]: the stage profiler; checkpoint reading, conversion,
//!   validation and download; the official J&F.
//! - [`data`]: SA-V/DAVIS reading, masks, prompts from the ground truth, synthetic splits.
//! - [`image`], [`cuda`]: Pillow-exact frame pixels; the device probe, memory pool, cuDNN
//!   engine, CUDA graph and vosbench's own kernels.
//! - [`host`]: procfs and disk readings about the machine.
//! - [`config`], [`compare`]: the variant registry and typed run options; the tensor comparison
//!   toolkit every parity check and test judges by.
//! - [`error`]: the error type.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod config;
pub mod cuda;
pub mod data;
pub mod error;
pub mod eval;
pub mod exec;
pub mod host;
pub mod image;
pub mod nn;
pub mod parity;
pub mod profile;
pub mod sam2;
pub mod tracker;
pub mod weights;

pub use error::{Error, Result};
