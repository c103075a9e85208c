//! `vosbench bench`: the two-phase benchmark (docs/benchmark.md). Phase A (setup) runs in this
//! process; phase B (inference) runs in a fresh process: the binary re-executes itself with the
//! same flags plus `--skip-setup`, and with `--isolate-models` once more per model.

use crate::bench::infer::{run_inference, summary_text, write_summary};
use crate::bench::mem::MemBudget;
use crate::bench::plan::{
    parse_models, read_json, BenchOptions, InferenceConfig, Metadata, CONFIG_NAME, METADATA_NAME,
    PHASE_ENV,
};
use crate::bench::setup::run_setup;
use crate::cli::common::{check_device_spec, parse_device};
use crate::config::{FenceSpec, GraphMode, Precision, ShardSpec};
use crate::error::{Error, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const DEFAULT_MODELS: &str =
    "sam2.1_base_plus_points,sam2.1_base_plus_bbox,edgetam_points,edgetam_bbox";
const DEMO_MODELS: &str = "edgetam_points,edgetam_bbox";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Split root (SA-V, DAVIS 2017 or MOSE layout). Not needed with --demo.
    #[arg(long, alias = "split_dir")]
    pub split_dir: Option<PathBuf>,
    /// Read <split-dir>/<split-name>.txt for the video list.
    #[arg(long, alias = "split_name")]
    pub split_name: Option<String>,
    /// Comma list of <variant or alias or variant .json>_<points|bbox>.
    #[arg(long)]
    pub models: Option<String>,
    /// Folder with converted checkpoints (<variant>.safetensors); missing ones are fetched.
    #[arg(long, alias = "weights_dir", default_value = "weights")]
    pub weights_dir: PathBuf,
    /// Square inference side (multiple of 32); default: each variant's own (1024).
    #[arg(long)]
    pub imgsz: Option<usize>,
    /// Model dtype: f32, f16 or bf16.
    #[arg(long, alias = "autocast_dtype", default_value = "f32")]
    pub precision: String,
    /// cpu or cuda:N (default: cuda:0 in a CUDA build, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Tune convolution algorithms in setup (cuDNN), within --workspace-mb.
    #[arg(long, alias = "enable_cudnn_tuning")]
    pub enable_cudnn_tuning: bool,
    /// Workspace limit for every convolution (the one cuDNN workspace arena), MiB. Tuning only
    /// times algorithms that fit it; without tuning the heuristic's first candidate that fits.
    #[arg(long, alias = "workspace_mb", default_value_t = 256)]
    pub workspace_mb: usize,
    /// Allow TF32 tensor-core math for f32 convolutions and matmuls (CUDA; PyTorch's default for
    /// convolutions). Off by default: pure f32.
    #[arg(long)]
    pub tf32: bool,
    /// Where each frame waits for the device so the memory pool can reuse what the frame freed
    /// (CUDA): auto (after memory attention in f32, nowhere in f16/bf16), off, all, or a comma
    /// list of trunk, neck, memcond, heads, block, layer (docs/performance.md, "Peak memory").
    #[arg(long, default_value = "auto")]
    pub memory_fence: String,
    /// Replay the image encoder's trunk as a CUDA graph (CUDA): auto (on in f16/bf16, off in
    /// f32), on or off (docs/performance.md, "CUDA graphs").
    #[arg(long, default_value = "auto")]
    pub cuda_graph: String,
    /// Most decoded frames resident at once in phase B.
    #[arg(long, alias = "max_frames_in_mem", default_value_t = 600)]
    pub max_frames_in_mem: usize,
    /// Memory budget in MiB (process RSS on CPU, device memory on a discrete GPU, system memory
    /// on unified-memory devices). A run that would exceed it is recorded as budget_exceeded.
    #[arg(long, alias = "mem_budget_mb")]
    pub mem_budget_mb: Option<u64>,
    /// At most N videos (0 = all).
    #[arg(long, alias = "limit_videos", default_value_t = 0)]
    pub limit_videos: usize,
    /// At most N objects per video (0 = all).
    #[arg(long, alias = "limit_objects", default_value_t = 0)]
    pub limit_objects: usize,
    /// Track at most N frames from the prompt frame (0 = to the end of the video).
    #[arg(long, alias = "max_clip_frames", default_value_t = 0)]
    pub max_clip_frames: usize,
    /// Tracked frames left out of fps_steady.
    #[arg(long, alias = "warmup_frames", default_value_t = 5)]
    pub warmup_frames: usize,
    /// Where metadata.json, inference_config.json and the frame cache go
    /// (default <out-dir>/preprocessed).
    #[arg(long, alias = "preprocessed_dir")]
    pub preprocessed_dir: Option<PathBuf>,
    /// Run phase B only (uses what an earlier setup wrote).
    #[arg(long, alias = "skip_setup")]
    pub skip_setup: bool,
    /// Run phase A only.
    #[arg(long, alias = "skip_inference")]
    pub skip_inference: bool,
    /// Run each model in its own inference process.
    #[arg(long, alias = "isolate_models")]
    pub isolate_models: bool,
    /// Write overlay PNGs under <out-dir>/overlays/.
    #[arg(long, alias = "save_overlays")]
    pub save_overlays: bool,
    /// Output folder (default vosbench_out, or vosbench_demo with --demo).
    #[arg(long, alias = "out_dir")]
    pub out_dir: Option<PathBuf>,
    /// Generate a small synthetic split under <out-dir>/demo_split and run everything on it.
    #[arg(long)]
    pub demo: bool,
    /// Videos in the demo split.
    #[arg(long, default_value_t = 2)]
    pub demo_videos: usize,
    /// Frames per demo video.
    #[arg(long, default_value_t = 16)]
    pub demo_frames: usize,
    /// Demo frame size WxH.
    #[arg(long, default_value = "320x240")]
    pub demo_size: String,
    /// Seeded random weights (speed and memory only; accuracy meaningless).
    #[arg(long, alias = "random_weights")]
    pub random_weights: bool,
    /// Seed of the random weights and the demo split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Click of point prompts: the mask pixel farthest from its boundary (interior), or the
    /// original harness's centroid (centroid; can fall outside a non-convex mask).
    #[arg(long, value_enum, default_value_t = crate::data::prompts::ClickMode::Interior)]
    pub click: crate::data::prompts::ClickMode,
    /// No progress bars or logs (errors and the final table still print).
    #[arg(long)]
    pub quiet: bool,
    /// Run only shard I of N of the (video, object, model) work list (0 <= I < N), partitioned
    /// by tracked frames the same way in every process; give each shard its own --out-dir and
    /// join them with `vosbench merge` (docs/cluster.md).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// One inference process per device, each running shard I/N of the work (N = the number
    /// of devices) under its own memory budget, e.g. cuda:0,cuda:1; then their results are
    /// merged into --out-dir. Setup runs on the first device.
    #[arg(long, value_name = "LIST", conflicts_with_all = ["device", "shard"])]
    pub devices: Option<String>,
    /// Internal: the inference process of one model (--isolate-models).
    #[arg(long, hide = true)]
    pub only_model: Option<String>,
}

impl Args {
    fn out_dir(&self) -> PathBuf {
        self.out_dir.clone().unwrap_or_else(|| {
            PathBuf::from(if self.demo {
                "vosbench_demo"
            } else {
                "vosbench_out"
            })
        })
    }

    fn preprocessed_dir(&self) -> PathBuf {
        self.preprocessed_dir
            .clone()
            .unwrap_or_else(|| self.out_dir().join("preprocessed"))
    }

    fn demo_size(&self) -> Result<(usize, usize)> {
        let bad = || {
            Error::Input(format!(
                "bad --demo-size '{}': expected WxH",
                self.demo_size
            ))
        };
        let (w, h) = self.demo_size.split_once('x').ok_or_else(bad)?;
        let (w, h) = (
            w.parse::<usize>().map_err(|_| bad())?,
            h.parse::<usize>().map_err(|_| bad())?,
        );
        if w < 16 || h < 16 {
            return Err(bad());
        }
        Ok((w, h))
    }

    /// The argv of the re-executed process: every flag from the parsed values (never a string
    /// join), so paths with spaces survive.
    pub fn child_argv(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["bench".into()];
        let mut opt = |k: &str, v: Option<OsString>| {
            if let Some(v) = v {
                a.push(format!("--{k}").into());
                a.push(v);
            }
        };
        opt("split-dir", self.split_dir.clone().map(Into::into));
        opt("split-name", self.split_name.clone().map(Into::into));
        opt("models", self.models.clone().map(Into::into));
        opt("weights-dir", Some(self.weights_dir.clone().into()));
        opt("imgsz", self.imgsz.map(|v| v.to_string().into()));
        opt("precision", Some(self.precision.clone().into()));
        opt("device", self.device.clone().map(Into::into));
        opt("workspace-mb", Some(self.workspace_mb.to_string().into()));
        opt("memory-fence", Some(self.memory_fence.clone().into()));
        opt("cuda-graph", Some(self.cuda_graph.clone().into()));
        opt(
            "max-frames-in-mem",
            Some(self.max_frames_in_mem.to_string().into()),
        );
        opt(
            "mem-budget-mb",
            self.mem_budget_mb.map(|v| v.to_string().into()),
        );
        opt("limit-videos", Some(self.limit_videos.to_string().into()));
        opt("limit-objects", Some(self.limit_objects.to_string().into()));
        opt(
            "max-clip-frames",
            Some(self.max_clip_frames.to_string().into()),
        );
        opt("warmup-frames", Some(self.warmup_frames.to_string().into()));
        opt("preprocessed-dir", Some(self.preprocessed_dir().into()));
        opt("out-dir", Some(self.out_dir().into()));
        opt("demo-videos", Some(self.demo_videos.to_string().into()));
        opt("demo-frames", Some(self.demo_frames.to_string().into()));
        opt("demo-size", Some(self.demo_size.clone().into()));
        opt("seed", Some(self.seed.to_string().into()));
        let click = clap::ValueEnum::to_possible_value(&self.click)
            .map(|v| v.get_name().to_string())
            .unwrap_or_else(|| "interior".into());
        opt("click", Some(click.into()));
        opt("only-model", self.only_model.clone().map(Into::into));
        opt("shard", self.shard.clone().map(Into::into));
        opt("devices", self.devices.clone().map(Into::into));
        for (on, k) in [
            (self.enable_cudnn_tuning, "enable-cudnn-tuning"),
            (self.tf32, "tf32"),
            (self.skip_inference, "skip-inference"),
            (self.isolate_models, "isolate-models"),
            (self.save_overlays, "save-overlays"),
            (self.demo, "demo"),
            (self.random_weights, "random-weights"),
            (self.quiet, "quiet"),
        ] {
            if on {
                a.push(format!("--{k}").into());
            }
        }
        a.push("--skip-setup".into());
        a
    }

    /// The typed options: every flag parsed here, once; a bad value is a one-line error before
    /// anything is written.
    fn options(&self) -> Result<BenchOptions> {
        let out_dir = self.out_dir();
        let split_dir = match (&self.split_dir, self.demo) {
            (Some(d), _) => d.clone(),
            (None, true) => out_dir.join("demo_split"),
            (None, false) => {
                return Err(Error::Input(
                    "give --split-dir DIR (or --demo for a synthetic split)".into(),
                ))
            }
        };
        let default_models = if self.demo {
            DEMO_MODELS
        } else {
            DEFAULT_MODELS
        };
        let imgsz = match (self.imgsz, self.demo) {
            (Some(s), _) => Some(s),
            (None, true) => Some(512),
            (None, false) => None,
        };
        let models = parse_models(self.models.as_deref().unwrap_or(default_models), imgsz)?;
        let shard = self
            .shard
            .as_deref()
            .map(str::parse::<ShardSpec>)
            .transpose()?;
        let devices = self.devices()?;
        let device = devices.first().cloned().or_else(|| self.device.clone());
        let cpu = device
            .as_deref()
            .map_or(!cfg!(feature = "cuda"), |d| d == "cpu");
        let precision = self.precision.parse::<Precision>()?.check_device(cpu)?;
        if self.max_frames_in_mem == 0 {
            return Err(Error::Input(
                "--max-frames-in-mem must be at least 1".into(),
            ));
        }
        let memory_fence = self.memory_fence.parse::<FenceSpec>()?;
        let cuda_graph = self.cuda_graph.parse::<GraphMode>()?;
        let mem_budget_bytes = self.mem_budget_mb.map(MemBudget::from_mib).transpose()?;
        Ok(BenchOptions {
            split_dir,
            split_name: self.split_name.clone(),
            models,
            weights_dir: self.weights_dir.clone(),
            imgsz,
            precision,
            device: device.unwrap_or_else(|| {
                if cfg!(feature = "cuda") {
                    "cuda:0".into()
                } else {
                    "cpu".into()
                }
            }),
            enable_cudnn_tuning: self.enable_cudnn_tuning,
            tf32: self.tf32,
            memory_fence,
            workspace_mb: self.workspace_mb,
            cuda_graph,
            max_frames_in_mem: self.max_frames_in_mem,
            mem_budget_bytes,
            limit_videos: self.limit_videos,
            limit_objects: self.limit_objects,
            max_clip_frames: self.max_clip_frames,
            warmup_frames: self.warmup_frames,
            preprocessed_dir: self.preprocessed_dir(),
            out_dir,
            save_overlays: self.save_overlays,
            random_weights: self.random_weights,
            seed: self.seed,
            demo: self.demo,
            quiet: self.quiet,
            click: self.click,
            shard,
        })
    }

    /// `--devices`, each checked (not opened); empty without the flag.
    fn devices(&self) -> Result<Vec<String>> {
        let Some(list) = &self.devices else {
            return Ok(Vec::new());
        };
        let devs = list
            .split(',')
            .map(check_device_spec)
            .collect::<Result<Vec<_>>>()?;
        if devs.is_empty() || devs.iter().any(|d| d.is_empty()) {
            return Err(Error::Input(format!(
                "bad --devices '{list}': expected a comma list such as cuda:0,cuda:1"
            )));
        }
        if devs.iter().any(|d| d == "cpu") && devs.iter().any(|d| d != "cpu") {
            return Err(Error::Input(format!(
                "bad --devices '{list}': the CPU and GPUs cannot share one run (one setup plans for one kind of device)"
            )));
        }
        if self.only_model.is_some() {
            return Err(Error::Input("--devices cannot run a single model".into()));
        }
        Ok(devs)
    }
}

/// Where `--devices` puts the results of device `i` of `n`.
pub fn device_shard_dir(out_dir: &Path, i: usize, n: usize) -> PathBuf {
    out_dir.join(format!("shard-{i}-of-{n}"))
}

/// Start `vosbench <argv>` as the inference process.
fn spawn_child(argv: &[OsString], what: &str) -> Result<std::process::Child> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find this executable to re-run it: {e}")))?;
    std::process::Command::new(exe)
        .args(argv)
        .env(PHASE_ENV, "inference")
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the {what} process: {e}")))
}

/// Wait for a child; an unsuccessful child is an error of the same class (it has printed its
/// own message).
fn wait_child(mut child: std::process::Child, what: &str) -> Result<u32> {
    let pid = child.id();
    let status = child
        .wait()
        .map_err(|e| Error::Other(format!("waiting for the {what} process: {e}")))?;
    match status.code() {
        Some(0) => Ok(pid),
        Some(2) => Err(Error::Input(format!(
            "the {what} process (pid {pid}) stopped on bad input (see above)"
        ))),
        Some(c) => Err(Error::Other(format!(
            "the {what} process (pid {pid}) failed with exit code {c}"
        ))),
        None => Err(Error::Other(format!(
            "the {what} process (pid {pid}) was killed by a signal; rerun the same command to resume"
        ))),
    }
}

/// Run `vosbench <argv>` as a child and wait.
fn run_child(argv: &[OsString], what: &str) -> Result<u32> {
    wait_child(spawn_child(argv, what)?, what)
}

/// `--devices`: one fresh inference process per device, all at once, each running shard i/n
/// of the work into its own out-dir (so no two processes write one file) with the run's memory
/// budget on its own device; when all have finished, their results are merged into the run's
/// out-dir and the table printed. A failed process does not stop the others; rerunning the
/// same command resumes every shard.
fn run_devices(args: &Args, devices: &[String]) -> Result<()> {
    let n = devices.len();
    let out_dir = args.out_dir();
    let mut children = Vec::new();
    for (i, dev) in devices.iter().enumerate() {
        let mut child = args.clone();
        child.devices = None;
        child.device = Some(dev.clone());
        child.shard = Some(ShardSpec::new(i, n)?.to_string());
        child.preprocessed_dir = Some(args.preprocessed_dir());
        let dir = device_shard_dir(&out_dir, i, n);
        child.out_dir = Some(dir.clone());
        // n progress bars on one terminal would be unreadable: the parent reports instead
        child.quiet = args.quiet || n > 1;
        if !args.quiet {
            eprintln!("{dev}: shard {i}/{n} -> {}", dir.display());
        }
        let what = format!("{dev} inference");
        children.push((what.clone(), spawn_child(&child.child_argv(), &what)));
    }
    let mut first_err = None;
    for (what, c) in children {
        let res = c.and_then(|c| wait_child(c, &what));
        if let Err(e) = res {
            if !args.quiet {
                eprintln!("{what}: {e}");
            }
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let dirs: Vec<PathBuf> = (0..n).map(|i| device_shard_dir(&out_dir, i, n)).collect();
    let merged = crate::bench::merge::merge(&dirs, &out_dir)?;
    if !args.quiet {
        eprintln!("\n{}", summary_text(&merged.config, &merged.rows));
        eprintln!(
            "results of {n} devices merged: {} and {}",
            merged.csv.display(),
            merged.summary.display()
        );
    }
    Ok(())
}

pub fn run(args: Args, switches: &crate::exec::EnvSwitches) -> Result<()> {
    // Everything the user can get wrong is checked before anything is written.
    let opts = args.options()?;
    let devices = args.devices()?;
    if !args.skip_setup {
        if args.demo && args.split_dir.is_none() && !opts.split_dir.is_dir() {
            let (w, h) = args.demo_size()?;
            let s = crate::data::synth::write_split(
                &opts.split_dir,
                &crate::data::synth::SynthOptions {
                    videos: args.demo_videos.max(1),
                    frames: args.demo_frames.max(3),
                    width: w,
                    height: h,
                    seed: args.seed,
                    objects: 2,
                },
            )?;
            if !args.quiet {
                eprintln!(
                    "demo: wrote a synthetic split of {} videos ({} frames in all) to {}",
                    s.videos.len(),
                    s.frames,
                    opts.split_dir.display()
                );
            }
        }
        if !opts.split_dir.is_dir() {
            return Err(Error::Input(format!(
                "split folder {} does not exist",
                opts.split_dir.display()
            )));
        }
        let device = parse_device(&opts.device)?;
        // setup is the same for every shard: the shard is the inference process's business
        let setup_opts = BenchOptions {
            shard: None,
            ..opts.clone()
        };
        run_setup(&setup_opts, &device, switches)?;
        if args.skip_inference {
            return Ok(());
        }
        if !devices.is_empty() {
            return run_devices(&args, &devices);
        }
        if !args.quiet {
            eprintln!("setup finished; starting the inference phase in a fresh process");
        }
        run_child(&args.child_argv(), "inference")?;
        return Ok(());
    }
    if !devices.is_empty() {
        return run_devices(&args, &devices);
    }

    // Phase B.
    let mut cfg: InferenceConfig = read_json(&opts.preprocessed_dir.join(CONFIG_NAME))?;
    let meta: Metadata = read_json(&opts.preprocessed_dir.join(METADATA_NAME))?;
    // What belongs to this inference process rather than to the setup it reads: its shard, its
    // device and out-dir when given (a shard or a device of --devices), and quietness.
    cfg.options.shard = opts.shard;
    if let Some(d) = &args.device {
        cfg.options.device = d.clone();
    }
    if let Some(o) = &args.out_dir {
        cfg.options.out_dir = o.clone();
    }
    cfg.options.quiet |= args.quiet;
    if args.isolate_models && args.only_model.is_none() {
        let mut pids = Vec::new();
        for m in &cfg.models {
            let mut child = args.clone();
            child.only_model = Some(m.name.clone());
            pids.push(run_child(
                &child.child_argv(),
                &format!("{} inference", m.name),
            )?);
        }
        write_summary(&cfg, &pids, &cfg.options.out_dir)?;
        return Ok(());
    }
    let device = parse_device(&cfg.options.device)?;
    run_inference(&cfg, &meta, &device, args.only_model.as_deref(), switches)?;
    if args.only_model.is_none() {
        write_summary(&cfg, &[std::process::id()], &cfg.options.out_dir)?;
    }
    Ok(())
}
