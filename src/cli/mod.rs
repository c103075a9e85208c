//! The `vosbench` command line. Each subcommand lives in its own file; this is the only layer
//! that prints errors: one line, exit code 2 for bad input.

use clap::{Parser, Subcommand};

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
pub enum Command {}

/// Parse arguments, run, print any error as one line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let res: crate::Result<()> = match cli.command {};
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
