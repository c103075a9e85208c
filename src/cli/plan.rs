//! `vosbench plan`: how a benchmark splits into N shards (`bench --shard I/N`, `--devices`, a
//! Slurm array) and how long each shard should take, so a user can choose N before spending
//! GPU hours (docs/cluster.md).

use crate::bench::plan::{read_json, InferenceConfig, Metadata, CONFIG_NAME, METADATA_NAME};
use crate::bench::results::{read_rows, summarize};
use crate::bench::shard::{format_plan, plan, uniform_units, work_units, WorkUnit};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Number of shards (processes, GPUs or array tasks).
    #[arg(long)]
    pub shards: usize,
    /// The work list of a setup (`bench --skip-inference`): its metadata.json and
    /// inference_config.json, exactly the units the shards would run.
    #[arg(long, value_name = "DIR", conflicts_with = "videos")]
    pub preprocessed_dir: Option<PathBuf>,
    /// Without a setup: a uniform work list of this many videos ...
    #[arg(long, requires_all = ["objects", "frames"])]
    pub videos: Option<usize>,
    /// ... with this many objects in all, spread over the videos ...
    #[arg(long)]
    pub objects: Option<usize>,
    /// ... of F frames each, or lengths spread evenly over A-B ...
    #[arg(long, value_name = "F or A-B")]
    pub frames: Option<String>,
    /// ... for each of these models (comma list of names; the units are per model).
    #[arg(long, default_value = "model")]
    pub models: String,
    /// Tracking speed of one process, frames per second (every model).
    #[arg(long, conflicts_with = "results")]
    pub fps: Option<f64>,
    /// Take each model's speed from a benchmark CSV (its `fps` over the ok rows).
    #[arg(long, value_name = "CSV")]
    pub results: Option<PathBuf>,
    /// Print the plan as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_frames(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::Input(format!("bad --frames '{s}': expected F or A-B"));
    let n = |t: &str| t.trim().parse::<usize>().map_err(|_| bad());
    match s.split_once('-') {
        Some((a, b)) => Ok((n(a)?, n(b)?)),
        None => {
            let f = n(s)?;
            Ok((f, f))
        }
    }
}

fn units(args: &Args) -> Result<Vec<WorkUnit>> {
    if let Some(p) = &args.preprocessed_dir {
        let cfg: InferenceConfig = read_json(&p.join(CONFIG_NAME))?;
        let meta: Metadata = read_json(&p.join(METADATA_NAME))?;
        return Ok(work_units(&cfg, &meta));
    }
    match (args.videos, args.objects, &args.frames) {
        (Some(v), Some(o), Some(f)) => {
            let (a, b) = parse_frames(f)?;
            let models: Vec<String> = args
                .models
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            if models.is_empty() {
                return Err(Error::Input("--models names no model".into()));
            }
            uniform_units(v, o, a, b, &models)
        }
        _ => Err(Error::Input(
            "give --preprocessed-dir DIR (a setup's work list) or --videos, --objects and --frames"
                .into(),
        )),
    }
}

pub fn run(args: Args) -> Result<()> {
    let units = units(&args)?;
    let speeds: BTreeMap<String, f64> = match (&args.results, args.fps) {
        (Some(csv), _) => summarize(&read_rows(csv)?)
            .into_iter()
            .filter_map(|m| m.fps.map(|f| (m.model, f)))
            .collect(),
        (None, Some(f)) if f > 0.0 && f.is_finite() => BTreeMap::new(),
        (None, Some(f)) => return Err(Error::Input(format!("bad --fps {f}: must be above 0"))),
        (None, None) => {
            return Err(Error::Input(
                "give --fps F or --results CSV (a measured speed)".into(),
            ))
        }
    };
    let fps = |m: &str| -> Result<f64> {
        match (args.fps, speeds.get(m)) {
            (_, Some(&f)) if f > 0.0 => Ok(f),
            (Some(f), _) if args.results.is_none() => Ok(f),
            _ => Err(Error::Input(format!(
                "{} has no ok row of {m}, so no measured speed for it",
                args.results
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ))),
        }
    };
    let p = plan(&units, args.shards, &fps)?;
    if args.json {
        let text = serde_json::to_string_pretty(&p)
            .map_err(|e| Error::Other(format!("cannot serialize the plan: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", format_plan(&p));
    }
    Ok(())
}
