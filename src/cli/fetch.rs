//! `vosbench fetch`: download original checkpoints from the hub, convert and verify them.

use crate::config::Registry;
use crate::weights::convert::{dtype_name, parse_dtype};
use crate::weights::hub::{fetch, FetchOutcome};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without network access, download the original checkpoint by hand, place it in the weights folder under its hub file name (e.g. weights/sam2.1_hiera_tiny.pt), and run fetch again: it converts what it finds."
)]
pub struct Args {
    /// Variants or aliases to fetch (e.g. sam2.1_hiera_tiny edgetam); `all` for the five released ones.
    #[arg(required = true)]
    pub models: Vec<String>,
    /// Folder for the checkpoints.
    #[arg(long, default_value = "weights")]
    pub weights_dir: PathBuf,
    /// Store float tensors as f32, f16 or bf16 [default: the checkpoint's own type].
    #[arg(long)]
    pub dtype: Option<String>,
}

pub fn run(args: Args) -> crate::Result<()> {
    let registry = Registry::builtin()?;
    let dtype = args.dtype.as_deref().map(parse_dtype).transpose()?;
    let mut cfgs = Vec::new();
    for m in &args.models {
        if m == "all" {
            cfgs.extend(registry.models().iter().filter(|c| !c.test_only).cloned());
        } else {
            cfgs.push(registry.resolve(m)?);
        }
    }
    for cfg in &cfgs {
        match fetch(cfg, &args.weights_dir, dtype, Some(&registry))? {
            FetchOutcome::AlreadyPresent(p) => {
                println!("{}: already present and valid at {}", cfg.name, p.display())
            }
            FetchOutcome::ConvertedLocal(r) => println!(
                "{}: converted the local original to {} ({} tensors, {})",
                cfg.name,
                r.output.display(),
                r.tensors,
                dtype_name(r.dtype)
            ),
            FetchOutcome::Downloaded(r) => println!(
                "{}: downloaded and converted to {} ({} tensors, {})",
                cfg.name,
                r.output.display(),
                r.tensors,
                dtype_name(r.dtype)
            ),
        }
    }
    Ok(())
}
