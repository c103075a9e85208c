//! The two-phase benchmark behind `vosbench bench` (docs/benchmark.md).
//!
//! Phase A ([`setup`]) probes the device, scans the split and derives the prompts
//! (`metadata.json`), writes the frame cache ([`cache`]), warms every model up on a real frame to
//! measure its memory ([`mem`]), and writes the budget plan (`inference_config.json`, [`plan`]).
//! Phase B ([`infer`]) runs in a fresh process: it tracks every (video, object, model) from the
//! cached frames, scores it with the official J&F rules as frames complete, and keeps
//! `vosbench_summary.csv` ([`results`]) rewritten atomically so a killed run resumes. What both
//! phases do with a model (build it, prompt it, set its convolution options) is in [`model`].

pub mod cache;
pub mod infer;
pub mod mem;
pub mod merge;
pub mod model;
pub mod plan;
pub mod progress;
pub mod results;
pub mod setup;
pub mod shard;

pub use mem::{BudgetFigure, MemBudget};
pub use plan::{BenchOptions, ModelTag, PromptKind};
pub use results::{Row, RowStatus};
