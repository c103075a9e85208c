//! The built `vosbench` binary and the library entry points behind its subcommands: the
//! two-phase benchmark (`bench_demo`), `track` (`cli_track*`), checkpoint conversion, `info` and
//! `fetch` (`convert`, `cli_weights`), `synth` and `eval` against the official evaluator
//! (`synth_cli`, `eval_official`), `plot`, and sharded runs with `merge`, `plan` and `--devices`
//! (`shard`), and the Jetson capture on fake machine trees (`jetson`). One test binary:
//! `cargo test --test cli [MODULE]`.

#[path = "../common/mod.rs"]
mod common;

mod bench_demo;
mod bench_reliability;
mod cli_track;
mod cli_track_edgetam;
mod cli_track_objects;
mod cli_track_timing;
mod cli_weights;
mod convert;
mod eval_official;
mod jetson;
mod objects_sweep;
mod plot;
mod shard;
mod synth_cli;
