//! The two-phase benchmark behind `vosbench bench` (docs/benchmark.md). The process the user
//! starts is a launcher ([`launch`]) that opens no device and runs each phase as a child.
//!
//! Phase A ([`setup`]) probes the device, scans the split and derives the prompts
//! (`metadata.json`), writes the frame cache ([`cache`]), warms every model up on a real frame to
//! measure its memory ([`mem`]), and writes the budget plan (`inference_config.json`, [`plan`]).
//! Phase B ([`infer`]) runs in a fresh process: it tracks every (video, object, model) from the
//! cached frames, scores it with the official J&F rules as frames complete, and keeps
//! `vosbench_summary.csv` ([`results`]) rewritten atomically so a killed run resumes. What both
//! phases do with a model (build it, prompt it, set its convolution options) is in [`model`].
//! With `--session-objects all` phase B runs one session per video with all its objects
//! ([`video_session`]) instead of one per object. On a Jetson the launcher records the board's
//! environment and samples the machine while phase B runs ([`jetson`]).

pub mod cache;
pub mod infer;
pub mod jetson;
pub mod launch;
pub mod mem;
pub mod merge;
pub mod model;
pub mod plan;
pub mod progress;
pub mod results;
pub mod row_fill;
pub mod setup;
pub mod shard;
pub mod sweep;
pub mod video_session;

pub use mem::{BudgetFigure, MemBudget};
pub use plan::{BenchOptions, ModelTag, PromptKind, SessionObjects};
pub use results::{Row, RowStatus};
