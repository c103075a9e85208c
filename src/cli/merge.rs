//! `vosbench merge`: join the out-dirs of the shards of one benchmark run (`bench --shard I/N`)
//! into one CSV, `summary.json` and table (docs/cluster.md).

use crate::bench::infer::summary_text;
use crate::bench::merge::merge;
use crate::error::Result;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The out-dirs of the shards, all N of them.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where the merged CSV and summary.json go.
    #[arg(long, value_name = "DIR", default_value = "vosbench_merged")]
    pub out: PathBuf,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let m = merge(&args.dirs, &args.out)?;
    if !args.quiet {
        eprintln!("\n{}", summary_text(&m.config, &m.rows));
        eprintln!(
            "merged {} ({}): {} and {}",
            crate::bench::setup::plural(m.shards, "shard"),
            crate::bench::setup::plural(m.rows.len(), "row"),
            m.csv.display(),
            m.summary.display()
        );
    }
    Ok(())
}
