//! vosbench: SAM 2.1 and EdgeTAM video object segmentation in pure Rust (candle), and a
//! benchmark for small GPUs that measures speed, memory and real J&F without dying of OOM.
//!
//! Layout (dependencies point down):
//! - [`cli`]: one file per subcommand; the only place that prints errors.
//! - [`bench`]: the two-phase benchmark (setup, then inference in a fresh process).
//! - [`tracker`]: video sessions, memory bank, prompts.
//! - [`sam2`]: the networks (SAM 2.1 and EdgeTAM), one file per PyTorch module.
//! - [`nn`]: layers both networks share, and the options a model is built with.
//! - [`exec`], [`profile`]: a session's execution policy (fences, trunk graph, stage profiler),
//!   passed down the forward.
//! - [`data`], [`eval`]: SA-V reading, synthetic data, the official J&F.
//! - [`image`]: Pillow-exact JPEG decoding, resize and normalisation of frames.
//! - [`weights`]: checkpoint conversion, validation and hub download.
//! - [`cuda`]: device probe, convolution tuning, memory pool control.
//! - [`compare`]: the tensor comparison toolkit every parity check and test judges by.
//! - [`config`]: the model variant registry (`models/*.json`) and the typed run options.
//! - [`host`]: procfs and disk readings about the machine (below everything but [`error`]).

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
