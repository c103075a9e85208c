//! `vosbench bench`: the two-phase benchmark (docs/benchmark.md). The process the user starts is
//! a launcher that never opens a device ([`crate::bench::launch`]): it runs phase A (setup) as a
//! child process, waits for it to exit, then runs phase B (inference) as a fresh child, or one
//! per model with `--isolate-models`. Each child is this binary again with the same flags plus
//! the internal `--phase`. A setup-only run (`--skip-inference`) is phase A in this process.

use crate::bench::infer::{run_inference, summary_text, write_summary};
use crate::bench::jetson::{JetsonCapture, PhaseSampling};
use crate::bench::launch::{
    exit_with_parent, run_phase, spawn_phase, Phase, PhaseProcess, Processes,
};
use crate::bench::mem::{check_unified_budget, MemBudget};
use crate::bench::plan::{
    parse_models, read_json, BenchOptions, InferenceConfig, Metadata, CONFIG_NAME, METADATA_NAME,
    PHASE_ENV,
};
use crate::bench::results::check_rows;
use crate::bench::setup::{preflight, run_setup};
use crate::cli::common::{check_device_spec, parse_device};
use crate::config::{FenceSpec, GraphMode, Precision, ShardSpec};
use crate::error::{Error, Result};
use crate::host::HostRoot;
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
    /// Comma list of <variant or alias or variant .json>_<points|bbox|mask> (mask: the object's
    /// ground-truth mask on its first annotated frame).
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
    /// Allow TF32 tensor-core math for f32 convolutions and matmuls (CUDA). Default: on for
    /// compute capability 8.0 and newer (Ampere, Jetson Orin, Hopper), as the original harness
    /// and PyTorch's convolutions; `--no-tf32` for pure f32.
    #[arg(long, conflicts_with = "no_tf32")]
    pub tf32: bool,
    /// Pure f32 math on CUDA (no TF32), whatever the device.
    #[arg(long)]
    pub no_tf32: bool,
    /// Where each frame waits for the device so the memory pool can reuse what the frame freed
    /// (CUDA): auto (after memory attention in f32, nowhere in f16/bf16), off, all, or a comma
    /// list of trunk, neck, memcond, heads, block, layer (docs/performance.md, "Peak memory").
    #[arg(long, default_value = "auto")]
    pub memory_fence: String,
    /// Replay the image encoder and a tracked frame's step (memory attention, heads, memory
    /// encoder) as CUDA graphs (CUDA): auto (on in f16/bf16, off in f32), on or off
    /// (docs/performance.md, "CUDA graphs").
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
    /// Write overlay PNGs under <out-dir>/overlays/ (also `--save_overlays 1` or `0`, the
    /// original harness's integer form).
    #[arg(long, alias = "save_overlays", num_args = 0..=1, default_value = "0",
          default_missing_value = "1", value_parser = int_bool, action = clap::ArgAction::Set)]
    pub save_overlays: bool,
    /// Shuffle the video order before --limit-videos (phase A; the order is recorded in
    /// metadata.json). Seeded by --seed, else by a seed drawn now and recorded.
    #[arg(long, alias = "shuffle_videos")]
    pub shuffle_videos: bool,
    /// The original harness's smoke test: a synthetic split (as --demo), 1 video, 1 object,
    /// --imgsz 256.
    #[arg(long, alias = "test_mode")]
    pub test_mode: bool,
    /// Run convolutions without cuDNN (CPU builds and CUDA builds without the cudnn feature do
    /// already; a cudnn build refuses it, since candle then always calls cuDNN).
    #[arg(long, alias = "disable_cudnn")]
    pub disable_cudnn: bool,
    /// Score only annotated frames with (frame - prompt frame) % N == 0 (else the prompt frame
    /// alone); 0 = every annotated frame the official rule scores.
    #[arg(long, alias = "annotation_stride_frames", default_value_t = 0)]
    pub annotation_stride_frames: usize,
    /// Feed every Nth frame from the prompt frame (a 24/N fps clip); only fed frames are scored.
    #[arg(long, alias = "input_frame_stride", default_value_t = 1)]
    pub input_frame_stride: usize,
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
    /// Seed of the random weights and the demo split (default 0). Given, it also shuffles the
    /// video order with this seed, as the original harness's --seed does.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Click of point prompts: the mask pixel farthest from its boundary (interior), or the
    /// original harness's centroid (centroid; can fall outside a non-convex mask).
    #[arg(long, value_enum, default_value_t = crate::data::prompts::ClickMode::Interior)]
    pub click: crate::data::prompts::ClickMode,
    /// Which objects share a tracking session: one (a session per video and object, the seed's
    /// protocol) or all (a session per video with all its objects, each added on its first
    /// annotated frame: the official VOS protocol). Default: all for *_mask models, one for
    /// *_points and *_bbox.
    #[arg(long, value_enum)]
    pub session_objects: Option<crate::bench::SessionObjects>,
    /// Write the tracked masks as PNGs in the SA-V layout under <out-dir>/masks/<model>/, for
    /// `vosbench eval` or the official evaluators.
    #[arg(long)]
    pub save_masks: bool,
    /// No progress bars or logs (errors and the final table still print).
    #[arg(long)]
    pub quiet: bool,
    /// Measure frames per second and peak memory against the number of objects tracked in one
    /// session instead of the benchmark: a comma list of object counts, e.g. 1,2,4,8,16
    /// (objects_sweep.csv and .json in the out-dir; docs/benchmark.md, "Objects sweep").
    #[arg(long, alias = "objects_sweep")]
    pub objects_sweep: Option<String>,
    /// Frames of each objects-sweep video.
    #[arg(long, alias = "sweep_frames", default_value_t = 200)]
    pub sweep_frames: usize,
    /// How the objects-sweep objects are prompted on frame 0.
    #[arg(long, value_enum, default_value_t = crate::bench::sweep::SweepPrompt::Mask)]
    pub sweep_prompt: crate::bench::sweep::SweepPrompt,
    /// Split problems (a broken annotation, an unreadable video, ...) are errors (exit 2)
    /// instead of items left out with a warning line.
    #[arg(long)]
    pub strict: bool,
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
    /// Read /etc, /proc and /sys under this folder instead of / (the Jetson capture, the host
    /// report and the unified-memory budget rule): a fake machine tree for tests. Default:
    /// $VOSBENCH_HOST_ROOT, else /.
    #[arg(long, value_name = "DIR")]
    pub host_root: Option<PathBuf>,
    /// On a Jetson: how often the launcher samples the machine (tegrastats, else /proc/meminfo
    /// and the sysfs GPU load) into <out-dir>/jetson_samples.csv while phase B runs, in ms
    /// (10 to 600000).
    #[arg(long, value_name = "MS", default_value_t = crate::bench::jetson::SAMPLE_INTERVAL_MS_DEFAULT)]
    pub sample_interval_ms: u64,
    /// Internal: the inference process of one model (--isolate-models).
    #[arg(long, hide = true)]
    pub only_model: Option<String>,
    /// Internal: this process is the given phase, started by the launcher.
    #[arg(long, hide = true, value_enum)]
    pub phase: Option<Phase>,
}

impl Args {
    fn out_dir(&self) -> PathBuf {
        self.out_dir.clone().unwrap_or_else(|| {
            PathBuf::from(if self.test_mode {
                "vosbench_test"
            } else if self.demo {
                "vosbench_demo"
            } else {
                "vosbench_out"
            })
        })
    }

    /// `--test-mode` spelled out: a synthetic split, 1 video, 1 object, side 256.
    fn with_test_mode(mut self) -> Self {
        if self.test_mode {
            self.demo = true;
            self.limit_videos = 1;
            self.limit_objects = 1;
            self.imgsz = Some(256);
        }
        self
    }

    fn preprocessed_dir(&self) -> PathBuf {
        self.preprocessed_dir
            .clone()
            .unwrap_or_else(|| self.out_dir().join("preprocessed"))
    }

    fn demo_size(&self) -> Result<(usize, usize)> {
        let bad = || {
            Error::Input(format!(
                "bad --demo-size '{}': expected WxH in pixels, e.g. 320x240",
                self.demo_size
            ))
        };
        let (w, h) = self.demo_size.split_once('x').ok_or_else(bad)?;
        let (w, h) = (
            w.parse::<usize>().map_err(|_| bad())?,
            h.parse::<usize>().map_err(|_| bad())?,
        );
        if w < 16 || h < 16 {
            return Err(Error::Input(format!(
                "--demo-size {w}x{h}: the demo frames must be at least 16x16"
            )));
        }
        Ok((w, h))
    }

    /// The demo split's flags, checked (with `--demo` only; they are ignored otherwise).
    fn check_demo(&self) -> Result<()> {
        if !self.demo {
            return Ok(());
        }
        self.demo_size()?;
        if self.demo_videos == 0 {
            return Err(Error::Input("--demo-videos 0: give at least 1".into()));
        }
        // Annotations fall on every 4th frame and scoring leaves out the first and the last.
        if self.demo_frames < 3 {
            return Err(Error::Input(format!(
                "--demo-frames {}: a demo video needs at least 3 frames (9 or more to be scored)",
                self.demo_frames
            )));
        }
        Ok(())
    }

    /// The argv of a phase process: every flag from the parsed values (never a string join), so
    /// paths with spaces survive, and `--phase`.
    pub fn child_argv(&self, phase: Phase) -> Vec<OsString> {
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
        opt("seed", self.seed.map(|v| v.to_string().into()));
        opt(
            "annotation-stride-frames",
            Some(self.annotation_stride_frames.to_string().into()),
        );
        opt(
            "input-frame-stride",
            Some(self.input_frame_stride.to_string().into()),
        );
        opt(
            "save-overlays",
            Some(if self.save_overlays { "1" } else { "0" }.into()),
        );
        let click = clap::ValueEnum::to_possible_value(&self.click)
            .map(|v| v.get_name().to_string())
            .unwrap_or_else(|| "interior".into());
        opt("click", Some(click.into()));
        opt("only-model", self.only_model.clone().map(Into::into));
        // The host root travels explicitly (not through the environment): the child reads the
        // same machine tree the launcher checked.
        opt("host-root", self.host_root.clone().map(Into::into));
        opt(
            "sample-interval-ms",
            Some(self.sample_interval_ms.to_string().into()),
        );
        opt(
            "session-objects",
            self.session_objects.map(|m| m.as_str().into()),
        );
        opt("shard", self.shard.clone().map(Into::into));
        opt("devices", self.devices.clone().map(Into::into));
        for (on, k) in [
            (self.enable_cudnn_tuning, "enable-cudnn-tuning"),
            (self.tf32, "tf32"),
            (self.no_tf32, "no-tf32"),
            (self.isolate_models, "isolate-models"),
            (self.save_masks, "save-masks"),
            (self.shuffle_videos, "shuffle-videos"),
            (self.test_mode, "test-mode"),
            (self.disable_cudnn, "disable-cudnn"),
            (self.demo, "demo"),
            (self.random_weights, "random-weights"),
            (self.quiet, "quiet"),
            (self.strict, "strict"),
        ] {
            if on {
                a.push(format!("--{k}").into());
            }
        }
        a.push("--phase".into());
        a.push(phase.as_str().into());
        a
    }

    /// The typed options: every flag parsed here, once; a bad value is a one-line error before
    /// anything is written.
    fn options(&self) -> Result<BenchOptions> {
        self.check_demo()?;
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
        if self.input_frame_stride == 0 {
            return Err(Error::Input(
                "--input-frame-stride must be at least 1".into(),
            ));
        }
        if self.disable_cudnn && !cpu && cfg!(feature = "cudnn") {
            return Err(Error::Input(
                "--disable-cudnn: this build runs every CUDA convolution through cuDNN (the cudnn feature); use a build with --features cuda only".into(),
            ));
        }
        if self.disable_cudnn && self.enable_cudnn_tuning {
            return Err(Error::Input(
                "--enable-cudnn-tuning and --disable-cudnn contradict each other".into(),
            ));
        }
        crate::bench::jetson::sample_interval(self.sample_interval_ms)?;
        let host_root = HostRoot::from_settings(self.host_root.as_deref(), None)?;
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
            tf32_auto: !self.tf32 && !self.no_tf32,
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
            seed: self.seed.unwrap_or(0),
            shuffle_videos: self.shuffle_videos || self.seed.is_some(),
            shuffle_seed: self.seed,
            test_mode: self.test_mode,
            disable_cudnn: self.disable_cudnn,
            annotation_stride_frames: self.annotation_stride_frames,
            input_frame_stride: self.input_frame_stride,
            demo: self.demo,
            quiet: self.quiet,
            click: self.click,
            session_objects: self.session_objects,
            save_masks: self.save_masks,
            strict: self.strict,
            shard,
            host_root,
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

/// The original harness's integer booleans: `1`/`0` (and `true`/`false`).
fn int_bool(s: &str) -> std::result::Result<bool, String> {
    match s.trim() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => Err(format!("expected 1 or 0, got '{other}'")),
    }
}

/// Where `--devices` puts the results of device `i` of `n`.
pub fn device_shard_dir(out_dir: &Path, i: usize, n: usize) -> PathBuf {
    out_dir.join(format!("shard-{i}-of-{n}"))
}

/// `--devices`: one fresh inference process per device, all at once, each running shard i/n
/// of the work into its own out-dir (so no two processes write one file) with the run's memory
/// budget on its own device; when all have finished, their results are merged into the run's
/// out-dir, the launcher's record of its processes is added to the merged summary.json and the
/// table printed. A failed process does not stop the others; rerunning the same command resumes
/// every shard.
fn run_devices(
    args: &Args,
    cfg: &InferenceConfig,
    devices: &[String],
    exe: &Path,
    setup: Option<PhaseProcess>,
    jetson: Option<JetsonCapture>,
) -> Result<()> {
    let n = devices.len();
    let out_dir = args.out_dir();
    let mut running = Vec::new();
    for (i, dev) in devices.iter().enumerate() {
        let mut child = args.clone();
        child.devices = None;
        child.device = Some(dev.clone());
        child.shard = Some(ShardSpec::new(i, n)?.to_string());
        child.preprocessed_dir = Some(args.preprocessed_dir());
        let dir = device_shard_dir(&out_dir, i, n);
        child.out_dir = Some(dir.clone());
        // n progress bars on one terminal would be unreadable: the launcher reports instead
        child.quiet = args.quiet || n > 1;
        if !args.quiet {
            eprintln!("{dev}: shard {i}/{n} -> {}", dir.display());
        }
        let argv = child.child_argv(Phase::Inference);
        running.push((
            dev.clone(),
            spawn_phase(exe, &argv, PHASE_ENV, Phase::Inference, None),
        ));
    }
    let mut first_err = None;
    let mut inference = Vec::new();
    for (dev, r) in running {
        match r.and_then(|r| r.wait()) {
            Ok(mut p) => {
                p.device = Some(dev);
                inference.push(p);
            }
            Err(e) => {
                if !args.quiet {
                    eprintln!("{dev}: {e}");
                }
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let dirs: Vec<PathBuf> = (0..n).map(|i| device_shard_dir(&out_dir, i, n)).collect();
    // Each shard's summary.json, as a `--shard` run writes it: what merge checks and reports.
    for (i, p) in inference.iter().enumerate() {
        let mut shard_cfg = cfg.clone();
        shard_cfg.options.shard = Some(ShardSpec::new(i, n)?);
        shard_cfg.options.device = devices[i].clone();
        shard_cfg.options.out_dir = dirs[i].clone();
        shard_cfg.options.quiet = true;
        let one = Processes {
            launcher_pid: std::process::id(),
            launcher_devices_opened: crate::cuda::devices_opened(),
            setup: None,
            inference: vec![p.clone()],
        };
        write_summary(&shard_cfg, &one, &dirs[i], jetson.as_ref())?;
    }
    let merged = crate::bench::merge::merge(&dirs, &out_dir)?;
    let processes = Processes {
        launcher_pid: std::process::id(),
        launcher_devices_opened: crate::cuda::devices_opened(),
        setup,
        inference,
    };
    let mut summary: serde_json::Value = read_json(&merged.summary)?;
    summary["launcher_pid"] = serde_json::Value::from(processes.launcher_pid);
    summary["processes"] =
        serde_json::to_value(&processes).map_err(|e| Error::Other(format!("summary.json: {e}")))?;
    summary["jetson"] =
        serde_json::to_value(&jetson).map_err(|e| Error::Other(format!("summary.json: {e}")))?;
    crate::bench::plan::write_json(&merged.summary, &summary)?;
    if !args.quiet {
        eprintln!("\n{}", summary_text(&merged.config, &merged.rows));
        eprintln!(
            "results of {n} devices merged: {} and {}",
            merged.csv.display(),
            merged.summary.display()
        );
    }
    check_rows(&merged.rows)
}

/// `--objects-sweep`: one process, no setup phase, its own synthetic videos under
/// <out-dir>/sweep_videos ([`crate::bench::sweep`]); --split-dir is not read.
fn run_objects_sweep(args: &Args, list: &str, switches: &crate::exec::EnvSwitches) -> Result<()> {
    let counts: crate::bench::sweep::ObjectCounts = list.parse()?;
    let videos_dir = args.out_dir().join("sweep_videos");
    let opts = Args {
        split_dir: Some(videos_dir.clone()),
        ..args.clone()
    }
    .options()?;
    let spec = crate::bench::sweep::SweepSpec {
        counts,
        frames: args.sweep_frames,
        prompt: args.sweep_prompt,
        videos_dir,
    };
    spec.check(opts.warmup_frames)?;
    let device = parse_device(&opts.device)?;
    crate::bench::sweep::run_sweep(&opts, &spec, &device, switches)?;
    if !args.quiet {
        eprintln!(
            "wrote {}",
            opts.out_dir.join(crate::bench::sweep::SWEEP_CSV).display()
        );
    }
    Ok(())
}

/// Phase A: the checks that need no split, the demo split if asked for, then setup on the
/// device. Nothing is written before the checks; a setup that fails leaves no demo split it made.
fn phase_a(args: &Args, opts: &BenchOptions, switches: &crate::exec::EnvSwitches) -> Result<()> {
    // Setup is the same for every shard: the shard is the inference process's business.
    let opts = &BenchOptions {
        shard: None,
        ..opts.clone()
    };
    preflight(opts)?;
    let out_existed = opts.out_dir.exists();
    let wrote_demo = args.demo && args.split_dir.is_none() && !opts.split_dir.is_dir();
    if wrote_demo {
        let (w, h) = args.demo_size()?;
        // Written beside its place and renamed when complete: a run killed meanwhile never
        // leaves a partial split that a rerun would take for the demo.
        let partial = opts.split_dir.with_extension("partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        }
        let s = crate::data::synth::write_split(
            &partial,
            &crate::data::synth::SynthOptions {
                videos: args.demo_videos,
                frames: args.demo_frames,
                width: w,
                height: h,
                seed: args.seed.unwrap_or(0),
                objects: 2,
            },
        )
        .inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&partial);
        })?;
        std::fs::rename(&partial, &opts.split_dir).map_err(|e| Error::io(&opts.split_dir, e))?;
        if !args.quiet {
            eprintln!(
                "demo: wrote a synthetic split of {} ({} frames in all) to {}",
                crate::bench::setup::plural(s.videos.len(), "video"),
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
    if let Err(e) = run_setup(opts, &device, switches) {
        // A run whose setup failed leaves no demo split (nor the out-dir it made for it).
        if wrote_demo {
            let _ = std::fs::remove_dir_all(&opts.split_dir);
            if !out_existed {
                let _ = std::fs::remove_dir(&opts.out_dir);
            }
        }
        return Err(e);
    }
    Ok(())
}

/// Phase B in this process: every model of the inference config, or `--only-model`.
fn phase_b(args: &Args, opts: &BenchOptions, switches: &crate::exec::EnvSwitches) -> Result<()> {
    let mut cfg: InferenceConfig = read_json(&opts.preprocessed_dir.join(CONFIG_NAME))?;
    // What belongs to this inference process rather than to the setup it reads: its out-dir
    // (this command's, the launcher said so when it differs), its shard, its device when given
    // (a shard of --devices), and quietness.
    cfg.options.out_dir = opts.out_dir.clone();
    cfg.options.shard = opts.shard;
    if let Some(d) = &args.device {
        cfg.options.device = d.clone();
    }
    cfg.options.quiet |= args.quiet;
    let meta: Metadata = read_json(&opts.preprocessed_dir.join(METADATA_NAME))?;
    let device = parse_device(&cfg.options.device)?;
    run_inference(&cfg, &meta, &device, args.only_model.as_deref(), switches)?;
    Ok(())
}

/// Start the inference processes, one after the other, each a fresh process that has to exit
/// before the next starts: one for every model, or one per model with `--isolate-models`. On a
/// Jetson (`sampling`) the machine is sampled while each runs.
fn spawn_phase_b(
    args: &Args,
    cfg: &InferenceConfig,
    exe: &Path,
    mut sampling: Option<&mut PhaseSampling>,
) -> Result<Vec<PhaseProcess>> {
    let models: Vec<Option<String>> = if args.isolate_models {
        cfg.models.iter().map(|m| Some(m.name.clone())).collect()
    } else {
        vec![None]
    };
    let mut done = Vec::new();
    for model in models {
        let mut child = args.clone();
        child.only_model = model.clone();
        let argv = child.child_argv(Phase::Inference);
        let run = || run_phase(exe, &argv, PHASE_ENV, Phase::Inference, model.as_deref());
        done.push(match sampling.as_deref_mut() {
            Some(s) => s.sample(model.as_deref(), run)?,
            None => run()?,
        });
    }
    Ok(done)
}

pub fn run(args: Args, switches: &crate::exec::EnvSwitches) -> Result<()> {
    if let Some(list) = args.objects_sweep.as_deref() {
        return run_objects_sweep(&args, list, switches);
    }
    // Everything the user can get wrong on the command line is checked before anything is
    // written.
    let args = args.with_test_mode();
    let opts = args.options()?;
    let devices = args.devices()?;
    // The unified-memory rule from the files under the host root (no device is opened): on a
    // Jetson a budget above 80 % of MemTotal is refused before anything is written. Setup checks
    // it again after its device probe (an integrated GPU the files did not name).
    let jetson = crate::host::jetson::detect(opts.host_root.path()).is_some();
    check_unified_budget(&opts.host_root, jetson, opts.mem_budget_bytes)?;
    match args.phase {
        Some(Phase::Setup) => {
            exit_with_parent();
            return phase_a(&args, &opts, switches);
        }
        Some(Phase::Inference) => {
            exit_with_parent();
            return phase_b(&args, &opts, switches);
        }
        None => {}
    }
    if args.skip_inference {
        // Setup only: this process is phase A (no later phase shares it).
        return if args.skip_setup {
            Ok(())
        } else {
            phase_a(&args, &opts, switches)
        };
    }
    // The launcher: from here on nothing opens a device.
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find this executable to re-run it: {e}")))?;
    let setup = if args.skip_setup {
        None
    } else {
        let p = run_phase(
            &exe,
            &args.child_argv(Phase::Setup),
            PHASE_ENV,
            Phase::Setup,
            None,
        )?;
        if !args.quiet {
            eprintln!(
                "setup finished (process {} exited); starting the inference phase in a fresh process",
                p.pid
            );
        }
        Some(p)
    };
    let mut cfg: InferenceConfig = read_json(&opts.preprocessed_dir.join(CONFIG_NAME))?;
    // Results go where this command says (--out-dir, or its default), never to the folder an
    // earlier setup recorded: a shared preprocessed dir must not mix two runs' results.
    if cfg.options.out_dir != opts.out_dir {
        if !args.quiet {
            eprintln!(
                "results go to {} (the setup in {} was run for {})",
                opts.out_dir.display(),
                opts.preprocessed_dir.display(),
                cfg.options.out_dir.display()
            );
        }
        cfg.options.out_dir = opts.out_dir.clone();
    }
    // The summary names what the inference processes ran: this command's shard and device.
    cfg.options.shard = opts.shard;
    if let Some(d) = &args.device {
        cfg.options.device = d.clone();
    }
    // On a Jetson: the board's environment for summary.json, and samples of phase B.
    let mut sampling = PhaseSampling::new(
        &opts.host_root,
        std::env::var_os("PATH").as_deref(),
        crate::bench::jetson::sample_interval(args.sample_interval_ms)?,
        &cfg.options.out_dir,
    );
    if !devices.is_empty() {
        let jetson = sampling.as_ref().map(|s| s.capture(&cfg.device));
        return run_devices(&args, &cfg, &devices, &exe, setup, jetson);
    }
    if let (Some(s), false) = (&sampling, args.quiet) {
        eprintln!(
            "jetson: sampling {} every {} ms into {}",
            s.tegrastats()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "/proc/meminfo and the GPU load".into()),
            args.sample_interval_ms,
            s.csv().display()
        );
    }
    let inference = spawn_phase_b(&args, &cfg, &exe, sampling.as_mut())?;
    let jetson = sampling.as_ref().map(|s| s.capture(&cfg.device));
    let processes = Processes {
        launcher_pid: std::process::id(),
        launcher_devices_opened: crate::cuda::devices_opened(),
        setup,
        inference,
    };
    let rows = write_summary(&cfg, &processes, &cfg.options.out_dir, jetson.as_ref())?;
    check_rows(&rows)
}
