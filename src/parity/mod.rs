//! Parity of the candle models with the official PyTorch code, measured against fixtures the
//! reference scripts write (`tests/reference/make_*_fixture*.py`, names in
//! `tests/reference/FIXTURES.md`), on any device, so full-size parity can be measured where the
//! Rust toolchain is absent (the hidden `vosbench parity` subcommand, `tests/gpu/`).
//!
//! - [`crate::compare`] (a low module of its own, so unit tests of every layer can use it): the
//!   comparison toolkit (relative L2 and max abs in f64 on the host, mask IoU).
//! - [`fixture`]: reading fixtures, the checkpoint a fixture was made with and its weight
//!   overrides.
//! - [`run_stages`]: every stage of a stage fixture, fed the reference's own inputs.
//! - [`run_tracking`]: every prompted run of a video fixture through a tracking session.
//! - [`run_multi_object`]: every run of a multi-object fixture through one session holding all
//!   of the run's objects.

pub mod fixture;
pub mod multi_object;
mod stages;
mod tracking;

pub use crate::compare::{compare, Feed, StageResult};
pub use fixture::{load_stages, load_weights};
pub use multi_object::{is_multi_object_fixture, run_multi_object};
pub use stages::{is_input, run_stages, run_stages_with, uncompared};
pub use tracking::{run_tracking, run_tracking_with_frames, TrackedFrame, TrackedRun};
