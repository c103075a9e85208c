//! Frame pixels against Pillow and the official preprocessing: the JPEG decoder (`jpeg_pillow`),
//! the resize, normalisation, folder listing and hole filling (`preprocess`); seeded random
//! weights building a working model (`random_weights`); the crate's layering, drawn from its own
//! `crate::` paths (`layering`); the crashers the fuzz targets found (`fuzz_regressions`). One
//! test binary:
//! `cargo test --test units [MODULE]`.
//!
//! tests/measure.rs stays a binary of its own: its RSS checks need a process in which no other
//! test allocates meanwhile.

#[path = "../common/mod.rs"]
mod common;

mod fuzz_regressions;
mod jetson;
mod jpeg_pillow;
mod layering;
mod preprocess;
mod random_weights;
