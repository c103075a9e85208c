//! `vosbench probe`: report the device and the host, as a readable block and as JSON.
//!
//! cuDNN convolution tuning is not implemented in this build; the command says so and writes no
//! tuning table.

use crate::bench::measure::to_mib;
use crate::cli::common::parse_device;
use crate::cuda::probe::{probe, DeviceReport};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// What the JSON file holds: the device report and the state of convolution tuning.
#[derive(Debug, serde::Serialize)]
pub struct ProbeOutput {
    #[serde(flatten)]
    pub device: DeviceReport,
    pub convolution_tuning: TuningStatus,
}

#[derive(Debug, serde::Serialize)]
pub struct TuningStatus {
    pub implemented: bool,
    pub workspace_mb: Option<u64>,
    pub models: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Device to probe: cpu, cuda or cuda:N (default: cuda:0 in a CUDA build, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Workspace budget for convolution tuning, in MiB (tuning is not implemented in this build).
    #[arg(long)]
    pub workspace_mb: Option<u64>,
    /// Models whose convolutions would be tuned (tuning is not implemented in this build).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub models: Vec<String>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn mib(v: Option<u64>) -> String {
    v.map(|b| format!("{:.0} MiB", to_mib(b)))
        .unwrap_or_else(|| "unknown".into())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The readable block `vosbench probe` prints.
pub fn render(r: &DeviceReport) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<24}{v}\n"));
    line(
        "device",
        r.kind.clone() + &r.ordinal.map(|o| format!(":{o}")).unwrap_or_default(),
    );
    line("name", opt(&r.name));
    if r.kind == "cuda" {
        line("compute capability", opt(&r.compute_capability));
        line("multiprocessors", opt(&r.multiprocessors));
        line("memory total", mib(r.total_bytes));
        line("memory free", mib(r.free_bytes));
        line("unified memory", r.unified_memory.to_string());
        line("integrated", opt(&r.integrated));
        line("memory pools", opt(&r.memory_pools));
        line(
            "pool release threshold",
            match r.pool_release_threshold {
                Some(u64::MAX) => "unlimited (freed memory is kept for reuse)".into(),
                Some(t) => format!("{t} bytes"),
                None => "n/a".into(),
            },
        );
        line("driver CUDA version", opt(&r.driver_cuda_version));
        line(
            "cuDNN version",
            r.cudnn_version
                .clone()
                .unwrap_or_else(|| "not in this build".into()),
        );
        line("TF32 f32 matmul", opt(&r.tf32_matmul));
    }
    let h = &r.host;
    line("host", format!("{} {}", h.os, h.arch));
    line("host CPU", opt(&h.cpu_model));
    line(
        "host cores",
        format!(
            "{} available, {} logical",
            opt(&h.available_cores),
            opt(&h.logical_cores)
        ),
    );
    line("host RAM total", mib(h.total_ram_bytes));
    line("host RAM available", mib(h.available_ram_bytes));
    line("Jetson", h.jetson.clone().unwrap_or_else(|| "no".into()));
    let features = if r.build_features.is_empty() {
        "none (CPU only)".to_string()
    } else {
        r.build_features.join(", ")
    };
    line("build features", features);
    for n in &r.notes {
        line("note", n.clone());
    }
    s
}

pub fn run(args: Args) -> Result<()> {
    let spec = args.device.clone().unwrap_or_else(|| {
        if cfg!(feature = "cuda") {
            "cuda:0"
        } else {
            "cpu"
        }
        .to_string()
    });
    let device = parse_device(&spec)?;
    let report = probe(&device)?;
    print!("{}", render(&report));
    println!("{:<24}not implemented in this build", "convolution tuning");
    let out = ProbeOutput {
        device: report,
        convolution_tuning: TuningStatus {
            implemented: false,
            workspace_mb: args.workspace_mb,
            models: args.models,
        },
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&out)
            .map_err(|e| Error::Other(format!("serialising the probe report: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
