//! The `vosbench` command line. Each subcommand lives in its own file; this is the only layer
//! that prints errors: one line, exit code 2 for bad input.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod common;
pub mod convert;
pub mod eval;
pub mod fetch;
pub mod figure;
pub mod info;
pub mod merge;
pub mod parity;
pub mod plan;
pub mod plot;
pub mod plot_sweep;
pub mod probe;
pub mod synth;
pub mod track;
pub mod track_objects;

#[derive(Debug, Parser)]
#[command(
    name = "vosbench",
    version,
    about = "SAM 2.1 and EdgeTAM video object segmentation in pure Rust, and an honest benchmark for small GPUs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark models on a split: setup, then inference in a fresh process.
    Bench(bench::Args),
    /// Merge the out-dirs of the shards of one benchmark run into one CSV and summary.
    Merge(merge::Args),
    /// Predict each shard's work and time for N shards, to choose N (docs/cluster.md).
    Plan(plan::Args),
    /// Report the device and tune convolutions within a workspace budget.
    Probe(probe::Args),
    /// Draw FPS against J&F and memory per model from a benchmark CSV.
    Plot(plot::Args),
    /// Download original checkpoints from the hub, convert and verify them.
    Fetch(fetch::Args),
    /// Convert an original (or HF-transformers) checkpoint to safetensors, validated.
    Convert(convert::Args),
    /// Print a variant's configuration, parameter count and checkpoint status.
    Info(info::Args),
    /// Score predicted masks against SA-V ground truth with the official J&F rules.
    Eval(eval::Args),
    /// Write a synthetic SA-V-layout split.
    Synth(synth::Args),
    /// Measure stage-by-stage parity against a reference fixture (developers; docs/parity.md).
    #[command(hide = true)]
    Parity(parity::Args),
    /// Segment an object through a folder of frames from a point or box prompt.
    Track(track::Args),
}

/// The developer switches of this run, from the environment: read here, once, and nowhere else.
fn env_switches() -> crate::exec::EnvSwitches {
    crate::exec::EnvSwitches::from_settings(
        std::env::var("VOSBENCH_PROFILE").ok().as_deref(),
        std::env::var("VOSBENCH_ATTENTION").ok().as_deref(),
    )
}

/// The command line with every value-taking flag accepting a leading minus, so that
/// `--workspace-mb -5` reaches the flag's own parser ("invalid value '-5' ...") instead of
/// being read as an unknown flag.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn negatives(a: clap::Arg) -> clap::Arg {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    }
    Cli::command().mut_subcommands(|c| c.mut_args(negatives))
}

/// Parse arguments, run, print any error as one line; returns the process exit code.
pub fn main() -> i32 {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let switches = env_switches();
    // The host root (a fake machine tree for tests): the flag, else VOSBENCH_HOST_ROOT, read
    // here once; bench passes it on to its phase processes on their command line.
    let host_root_env = std::env::var("VOSBENCH_HOST_ROOT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(std::path::PathBuf::from);
    let cli = match cli.command {
        Command::Bench(mut a) => {
            a.host_root = a.host_root.or(host_root_env);
            Cli {
                command: Command::Bench(a),
            }
        }
        Command::Probe(mut a) => {
            a.host_root = a.host_root.or(host_root_env);
            Cli {
                command: Command::Probe(a),
            }
        }
        other => Cli { command: other },
    };
    let res: crate::Result<()> = match cli.command {
        Command::Bench(a) => bench::run(a, &switches),
        Command::Merge(a) => merge::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Probe(a) => probe::run_with(a, &switches),
        Command::Plot(a) => plot::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Info(a) => info::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Track(a) if a.several_objects() => track_objects::run(&a, &switches),
        Command::Track(a) => track::run(a, &switches),
        Command::Parity(a) => parity::run(a, &switches),
    };
    if let Some(p) = &switches.profiler {
        if let Some(r) = p.report() {
            let what = if p.host_only() {
                "host time to issue each stage, VOSBENCH_PROFILE=host"
            } else {
                "VOSBENCH_PROFILE"
            };
            eprintln!("\nstage timings ({what}):\n{r}");
        }
    }
    match res {
        Ok(()) => 0,
        // A phase process printed its own error line already.
        Err(e @ crate::Error::Reported { .. }) => e.exit_code(),
        Err(e) => {
            // One line: tensor errors may carry a backtrace after their message.
            let msg = e.to_string();
            eprintln!("error: {}", msg.lines().next().unwrap_or("").trim_end());
            e.exit_code()
        }
    }
}
