//! The official SA-V J&F, reimplemented exactly and fast.
//!
//! - [`j_and_f`]: per-frame J and F (boundary map, disk tolerance through
//!   [`crate::data::edt`], empty cases).
//! - [`evaluator`]: per-object accumulation with the official rules, the streaming
//!   [`evaluator::ObjectScorer`] the benchmark feeds, and results.csv / results.json.
//! - [`dirs`]: evaluating a prediction folder against a ground-truth folder (`vosbench eval`).

pub mod dirs;
pub mod evaluator;
pub mod j_and_f;

pub use dirs::{evaluate_dirs, EvalOptions};
pub use evaluator::{
    ObjectKey, ObjectResult, ObjectScore, ObjectScorer, Report, SequenceEvaluator,
};
pub use j_and_f::{bound_pix, score_frame, FrameScore};
