//! `vosbench convert`: an original (or HF-transformers) checkpoint to a validated safetensors file.

use crate::config::Registry;
use crate::weights::convert::{convert, dtype_name, parse_dtype};
use crate::weights::hub::converted_path;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  vosbench convert sam2.1_hiera_tiny.pt --model sam2.1_hiera_tiny\n  vosbench convert model.safetensors --model edgetam --dtype bf16 -o weights/edgetam.safetensors"
)]
pub struct Args {
    /// The checkpoint to convert: an original `.pt` (torch zip with the state dict under "model")
    /// or a safetensors file in the original or HF-transformers layout.
    pub input: PathBuf,
    /// Model variant or alias (e.g. sam2.1_hiera_tiny, sam2_base, edgetam), or a variant JSON file.
    #[arg(long, short)]
    pub model: String,
    /// Output file [default: <weights-dir>/<variant>.safetensors].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Store float tensors as f32, f16 or bf16 [default: the checkpoint's own type].
    #[arg(long)]
    pub dtype: Option<String>,
    /// Folder for the default output path.
    #[arg(long, default_value = "weights")]
    pub weights_dir: PathBuf,
}

pub fn run(args: Args) -> crate::Result<()> {
    let registry = Registry::builtin()?;
    let cfg = registry.resolve(&args.model)?;
    let dtype = args.dtype.as_deref().map(parse_dtype).transpose()?;
    let output = args
        .output
        .unwrap_or_else(|| converted_path(&args.weights_dir, &cfg));
    let r = convert(&args.input, &output, &cfg, dtype, Some(&registry))?;
    println!(
        "converted {} ({} layout) -> {}: variant {}, {} tensors, {} parameters, {}, {:.1} MB",
        args.input.display(),
        r.layout.as_str(),
        r.output.display(),
        r.variant,
        r.tensors,
        r.params,
        dtype_name(r.dtype),
        r.bytes as f64 / 1e6
    );
    Ok(())
}
