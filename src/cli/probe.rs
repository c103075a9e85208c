//! `vosbench probe`: report the device and the host, and with `--models` tune the cuDNN
//! convolution algorithms of those models within `--workspace-mb` and print the table; both as a
//! readable block and as JSON.
//!
//! Tuning runs each model (seeded random weights: the algorithms depend on shapes, not values) on
//! a synthetic textured frame at its inference size: the prompt frame and two tracked frames, so
//! every convolution of the image encoder, the SAM heads and the memory encoder meets the search.

use crate::cli::common::{parse_device, synthetic_frame};
use crate::config::Registry;
use crate::cuda::probe::{probe, DeviceReport};
use crate::cuda::tuning::{ConvOptions, ConvTuner, Source, TuningTable};
use crate::error::{Error, Result};
use crate::exec::EnvSwitches;
use crate::host::procfs::to_mib;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::frames::RgbFrames;
use crate::tracker::session::{Prompt, Session, SessionOptions};
use candle_core::{DType, Device};
use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "cuda")]
pub mod attention;
pub mod graphs;
#[cfg(feature = "cuda")]
pub mod kernels;

/// What the JSON file holds: the device report and the convolution tuning.
#[derive(Debug, serde::Serialize)]
pub struct ProbeOutput {
    #[serde(flatten)]
    pub device: DeviceReport,
    pub convolution_tuning: TuningStatus,
    /// `--check-attention`: the fused attention kernel against the unfused path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_check: Option<Vec<AttentionCheckRow>>,
    /// `--check-kernels`: the bias-add and RoPE kernels against the unfused path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_check: Option<Vec<KernelCheckRow>>,
    /// `--check-graphs`: sessions with CUDA graphs against the same sessions run eagerly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_check: Option<Vec<graphs::GraphCheckRow>>,
}

#[cfg(feature = "cuda")]
pub use attention::CheckRow as AttentionCheckRow;
#[cfg(feature = "cuda")]
pub use kernels::KernelCheckRow;
/// (CPU builds never run the attention check.)
#[cfg(not(feature = "cuda"))]
#[derive(Debug, serde::Serialize)]
pub struct AttentionCheckRow;
/// (CPU builds never run the kernel check.)
#[cfg(not(feature = "cuda"))]
#[derive(Debug, serde::Serialize)]
pub struct KernelCheckRow;

#[derive(Debug, serde::Serialize)]
pub struct TuningStatus {
    /// Whether the algorithm search ran.
    pub ran: bool,
    /// Why it did not (CPU device, no cuDNN in this build, no models given).
    pub reason: Option<String>,
    pub workspace_mb: u64,
    pub models: Vec<String>,
    /// Every convolution shape and its algorithm (empty when the search did not run).
    pub table: TuningTable,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Device to probe: cpu, cuda or cuda:N (default: cuda:0 in a CUDA build, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Workspace limit for the convolution algorithm search, in MiB.
    #[arg(long)]
    pub workspace_mb: Option<u64>,
    /// Models whose convolutions are tuned (variant names or aliases, comma separated).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub models: Vec<String>,
    /// Inference size for the tuned models [default: each model's own].
    #[arg(long)]
    pub imgsz: Option<usize>,
    /// Model dtype of the tuned convolutions: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Allow TF32 math for f32 convolutions during the search.
    #[arg(long)]
    pub tf32: bool,
    /// Check the fused CUDA attention kernel against the unfused path (f32, TF32, f16, bf16 at
    /// the models' shapes and odd sizes) and time both; exit 1 if a case is out of tolerance.
    #[arg(long)]
    pub check_attention: bool,
    /// Check every vosbench CUDA kernel against the unfused path: the attention check above,
    /// plus the bias-add and RoPE kernels in f32, f16 and bf16 (timed at the models' shapes);
    /// exit 1 if a case is out of tolerance.
    #[arg(long)]
    pub check_kernels: bool,
    /// Check the CUDA graphs (the trunk and the step of a tracked frame): track a synthetic
    /// video with seeded random weights with graphs off and on, f32 and bf16, one and three
    /// objects, for the --models given (default sam2.1_hiera_tiny and edgetam), and compare
    /// every frame's logits; exit 1 if a graph was not captured or the logits differ.
    #[arg(long)]
    pub check_graphs: bool,
    /// Write the report (and the tuning table) as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Read /etc, /proc and /sys under this folder instead of / (a fake machine tree for
    /// tests). Default: $VOSBENCH_HOST_ROOT, else /.
    #[arg(long, value_name = "DIR")]
    pub host_root: Option<PathBuf>,
}

/// Run one model through the prompt frame and two tracked frames with the search on (the
/// choices land in `model_opts.conv_tuner`).
fn tune_model(
    name: &str,
    imgsz: Option<usize>,
    dtype: DType,
    device: &Device,
    model_opts: &ModelOptions,
    switches: &EnvSwitches,
) -> Result<()> {
    let reg = Registry::builtin()?;
    let mut cfg = reg.resolve(name)?;
    if let Some(s) = imgsz {
        cfg = cfg.with_image_size(s)?;
    }
    let vb = crate::weights::random::random_var_builder(0, dtype, device);
    let model = Sam2Base::new_with(&cfg, model_opts, vb)?;
    let side = cfg.image_size;
    let frames = (0..3)
        .map(|i| synthetic_frame(side, 4 * i, &[(0.5, 0.5)], 1.0 / 6.0))
        .collect();
    let frames = RgbFrames::new(frames, side as u32, side as u32)?;
    let session_opts = SessionOptions::default().with_profiler(switches.profiler.clone());
    let mut session = Session::with_frames(&model, Box::new(frames), device, session_opts);
    let q = side as f32 / 4.0;
    let prompt = Prompt {
        points: vec![],
        bbox: Some([q, q, 3.0 * q, 3.0 * q]),
    };
    session.add_prompt(0, 1, &prompt)?;
    session.propagate(Some(0), Some(2), false, |_r| Ok(()))?;
    device.synchronize()?;
    Ok(())
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
    if let Some(j) = &h.jetson_info {
        let mhz = |hz: Option<u64>| {
            hz.map(|v| format!("{:.1} MHz", v as f64 / 1e6))
                .unwrap_or_else(|| "unknown".into())
        };
        line("Jetson module", opt(&j.model));
        line(
            "L4T / JetPack",
            format!("{} / {}", opt(&j.l4t), opt(&j.jetpack)),
        );
        line("SoC", opt(&j.soc));
        line("nvpmodel mode", opt(&j.nvpmodel));
        line(
            "jetson_clocks",
            match j.jetson_clocks {
                Some(true) => "on (every clock minimum at its maximum)".into(),
                Some(false) => "off".into(),
                None => "unknown".into(),
            },
        );
        line(
            "GPU clock",
            format!(
                "{} (min {}, max {})",
                mhz(j.gpu_freq_hz),
                mhz(j.gpu_min_freq_hz),
                mhz(j.gpu_max_freq_hz)
            ),
        );
        line("EMC clock", mhz(j.emc_freq_hz));
    }
    if h.host_root != std::path::Path::new("/") {
        line("host root", h.host_root.display().to_string());
    }
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

/// `vosbench probe` with no profiler and fused attention (what tests call).
pub fn run(args: Args) -> Result<()> {
    run_with(args, &EnvSwitches::default())
}

/// `vosbench probe` with the run's environment switches (what the CLI calls).
pub fn run_with(args: Args, switches: &EnvSwitches) -> Result<()> {
    let spec = args.device.clone().unwrap_or_else(|| {
        if cfg!(feature = "cuda") {
            "cuda:0"
        } else {
            "cpu"
        }
        .to_string()
    });
    let device = parse_device(&spec)?;
    let dtype = args.precision.parse::<crate::config::Precision>()?.dtype();
    let workspace_mb = args.workspace_mb.unwrap_or(256);
    let root = crate::host::HostRoot::from_settings(args.host_root.as_deref(), None)?;
    let report = probe(&device, &root)?;
    print!("{}", render(&report));
    let reason = if args.models.is_empty() {
        Some("no --models given".to_string())
    } else if !device.is_cuda() {
        Some("cuDNN tuning applies to CUDA devices".to_string())
    } else if !cfg!(feature = "cudnn") {
        Some("this build has no cuDNN (built without the cudnn feature)".to_string())
    } else {
        None
    };
    let mut table = TuningTable::default();
    if reason.is_none() {
        let conv = ConvOptions::new(workspace_mb as usize, args.tf32, true);
        crate::cuda::tuning::set_candle_matmul_tf32(conv.tf32);
        // One tuner for all the models: the table printed holds every shape they have.
        let model_opts =
            ModelOptions::new(Arc::new(ConvTuner::new(conv)), switches.fused_attention);
        for m in &args.models {
            tune_model(m, args.imgsz, dtype, &device, &model_opts, switches).map_err(
                |e| match e {
                    Error::Candle(c) => Error::Other(format!(
                        "tuning {m}: {}",
                        c.to_string().lines().next().unwrap_or("")
                    )),
                    other => other,
                },
            )?;
        }
        table = model_opts.conv_tuner.table();
        table.device = report.name.clone();
        println!(
            "\nconvolution tuning within {workspace_mb} MiB ({}): {} shapes, {} tuned, {} fell back to the heuristic",
            args.models.join(", "),
            table.entries.len(),
            table.count(Source::Tuned),
            table.count(Source::Fallback)
        );
        print!("{}", table.render());
    } else if let Some(r) = &reason {
        println!("{:<24}not run: {r}", "convolution tuning");
    }
    let attention_check = if args.check_attention || args.check_kernels {
        let flag = if args.check_kernels {
            "--check-kernels"
        } else {
            "--check-attention"
        };
        Some(check_attention(&device, flag)?)
    } else {
        None
    };
    let kernel_check = if args.check_kernels {
        Some(check_kernels(&device)?)
    } else {
        None
    };
    let graph_check = if args.check_graphs {
        if !device.is_cuda() {
            return Err(Error::Input(
                "--check-graphs needs a CUDA device (--device cuda)".into(),
            ));
        }
        let models = if args.models.is_empty() {
            vec!["sam2.1_hiera_tiny".to_string(), "edgetam".to_string()]
        } else {
            args.models.clone()
        };
        let rows = graphs::check(&device, &models)?;
        println!(
            "
CUDA graphs against eager sessions:"
        );
        print!("{}", graphs::render_check(&rows));
        Some(rows)
    } else {
        None
    };
    let failed = graph_check
        .as_ref()
        .map_or(0, |rows| rows.iter().filter(|r| !r.ok).count())
        + attention_check
            .as_ref()
            .map_or(0, |rows| rows.iter().filter(|r| !attention_ok(r)).count())
        + kernel_check
            .as_ref()
            .map_or(0, |rows| rows.iter().filter(|r| !kernel_ok(r)).count());
    let out = ProbeOutput {
        attention_check,
        kernel_check,
        graph_check,
        device: report,
        convolution_tuning: TuningStatus {
            ran: reason.is_none(),
            reason,
            workspace_mb,
            models: args.models,
            table,
        },
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&out)
            .map_err(|e| Error::Other(format!("serialising the probe report: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
        println!("wrote {}", path.display());
    }
    if failed > 0 {
        return Err(Error::Other(format!(
            "check: {failed} case(s) failed (tables above)"
        )));
    }
    Ok(())
}

/// `flag` names the option that asked for the check, for the error.
#[cfg(feature = "cuda")]
fn check_attention(device: &Device, flag: &str) -> Result<Vec<AttentionCheckRow>> {
    if !device.is_cuda() {
        return Err(Error::Input(format!(
            "{flag} needs a CUDA device (--device cuda)"
        )));
    }
    let rows = attention::check(device, true)?;
    println!("\nfused attention against the unfused path (pure f32 reference):");
    print!("{}", attention::render_check(&rows));
    Ok(rows)
}

#[cfg(not(feature = "cuda"))]
fn check_attention(_device: &Device, flag: &str) -> Result<Vec<AttentionCheckRow>> {
    Err(Error::Input(format!(
        "{flag} needs a CUDA build (--features cuda) and device"
    )))
}

#[cfg(feature = "cuda")]
fn attention_ok(r: &AttentionCheckRow) -> bool {
    r.ok
}

#[cfg(not(feature = "cuda"))]
fn attention_ok(_: &AttentionCheckRow) -> bool {
    false
}

#[cfg(feature = "cuda")]
fn check_kernels(device: &Device) -> Result<Vec<KernelCheckRow>> {
    if !device.is_cuda() {
        return Err(Error::Input(
            "--check-kernels needs a CUDA device (--device cuda)".into(),
        ));
    }
    let rows = kernels::check(device, true)?;
    println!("\nelementwise kernels against the unfused path:");
    print!("{}", kernels::render_check(&rows));
    Ok(rows)
}

#[cfg(not(feature = "cuda"))]
fn check_kernels(_device: &Device) -> Result<Vec<KernelCheckRow>> {
    Err(Error::Input(
        "--check-kernels needs a CUDA build (--features cuda) and device".into(),
    ))
}

#[cfg(feature = "cuda")]
fn kernel_ok(r: &KernelCheckRow) -> bool {
    r.ok
}

#[cfg(not(feature = "cuda"))]
fn kernel_ok(_: &KernelCheckRow) -> bool {
    false
}
