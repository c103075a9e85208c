//! What both phases share: the benchmark options, the model tags, and the files phase A writes
//! for phase B (`metadata.json`, `inference_config.json`).

use crate::bench::mem::{BudgetFigure, DeviceInfo, MemBudget};
use crate::config::{FenceSpec, GraphMode, ModelConfig, Precision, Registry, ShardSpec};
use crate::data::prompts::ClickMode;
use crate::data::sav::{Annotation, MaskKind, ObjectTrack};
use crate::error::{Error, Result};
use crate::host::HostRoot;
use crate::tracker::session::SessionOptions;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable set on each phase process (its value: `setup` or `inference`).
pub const PHASE_ENV: &str = "VOSBENCH_PHASE";
/// Test hook: milliseconds to sleep after each finished row (outside every timing), so a test
/// can kill the inference process between rows.
pub const ROW_DELAY_ENV: &str = "VOSBENCH_ROW_DELAY_MS";

pub const METADATA_NAME: &str = "metadata.json";
pub const CONFIG_NAME: &str = "inference_config.json";
pub const SUMMARY_NAME: &str = "summary.json";

/// Which prompt a model tag uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Points,
    Bbox,
    /// The object's ground-truth mask on its first annotated frame (semi-supervised VOS, the
    /// protocol of the published SA-V / DAVIS / MOSE J&F).
    Mask,
}

impl PromptKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PromptKind::Points => "points",
            PromptKind::Bbox => "bbox",
            PromptKind::Mask => "mask",
        }
    }
}

/// Which objects share a tracking session (`--session-objects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SessionObjects {
    /// One session per (video, object): the seed protocol; the object's own image-encoder passes.
    One,
    /// One session per video with all its objects (the official VOS protocol): the image encoder
    /// runs once per frame for all of them, an object joins at its prompt frame.
    All,
}

impl SessionObjects {
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionObjects::One => "one",
            SessionObjects::All => "all",
        }
    }

    /// The default of a prompt kind: `all` for masks (the official protocol), `one` for points
    /// and boxes (the seed protocol).
    pub fn default_for(kind: PromptKind) -> Self {
        match kind {
            PromptKind::Mask => SessionObjects::All,
            PromptKind::Points | PromptKind::Bbox => SessionObjects::One,
        }
    }
}

/// A `<variant or alias or .json path>_<points|bbox>` tag, resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelTag {
    /// As given on the command line.
    pub given: String,
    /// `<variant name>_<prompt>`: the `model` column (aliases give the same name).
    pub name: String,
    pub prompt: PromptKind,
    /// The variant, with `image_size` (and what derives from it) set to the inference size.
    pub config: ModelConfig,
}

/// Parse and resolve a comma-separated list of tags. `imgsz`: the inference side for every
/// model (None: each variant's own).
pub fn parse_models(list: &str, imgsz: Option<usize>) -> Result<Vec<ModelTag>> {
    let reg = Registry::builtin()?;
    let mut out: Vec<ModelTag> = Vec::new();
    for given in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (variant, prompt) = given.rsplit_once('_').ok_or_else(|| {
            Error::Input(format!(
                "bad model tag '{given}': expected <variant>_points, <variant>_bbox or \
                 <variant>_mask"
            ))
        })?;
        let prompt = match prompt {
            "points" | "point" => PromptKind::Points,
            "bbox" | "box" => PromptKind::Bbox,
            "mask" => PromptKind::Mask,
            other => {
                return Err(Error::Input(format!(
                    "bad model tag '{given}': prompt '{other}' is not points, bbox or mask"
                )))
            }
        };
        let mut config = reg.resolve(variant)?;
        if let Some(s) = imgsz {
            config = config.with_image_size(s)?;
        }
        let name = format!("{}_{}", config.name, prompt.as_str());
        if out.iter().any(|m| m.name == name) {
            continue;
        }
        out.push(ModelTag {
            given: given.to_string(),
            name,
            prompt,
            config,
        });
    }
    if out.is_empty() {
        return Err(Error::Input("--models names no model".into()));
    }
    Ok(out)
}

/// Everything the two phases are told (from the command line), typed: the CLI parses every flag
/// once, and phase B reads these back from `inference_config.json`, where an unknown value or
/// field is an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchOptions {
    pub split_dir: PathBuf,
    pub split_name: Option<String>,
    pub models: Vec<ModelTag>,
    pub weights_dir: PathBuf,
    pub imgsz: Option<usize>,
    /// `--precision`, already checked against the device.
    pub precision: Precision,
    pub device: String,
    pub enable_cudnn_tuning: bool,
    pub workspace_mb: usize,
    /// TF32 allowed for f32 convolutions and matmuls (what phase B runs with).
    pub tf32: bool,
    /// Neither `--tf32` nor `--no-tf32` was given: setup sets `tf32` from the device
    /// ([`BenchOptions::with_device_defaults`]).
    #[serde(default)]
    pub tf32_auto: bool,
    /// `--memory-fence` (resolved per precision when a session opens).
    pub memory_fence: FenceSpec,
    /// `--cuda-graph` (resolved per precision when a session opens).
    pub cuda_graph: GraphMode,
    pub max_frames_in_mem: usize,
    /// `--mem-budget-mb`, in bytes; what both phases hold the budget figure against.
    pub mem_budget_bytes: Option<MemBudget>,
    pub limit_videos: usize,
    pub limit_objects: usize,
    pub max_clip_frames: usize,
    pub warmup_frames: usize,
    pub preprocessed_dir: PathBuf,
    pub out_dir: PathBuf,
    pub save_overlays: bool,
    pub random_weights: bool,
    pub seed: u64,
    pub demo: bool,
    pub quiet: bool,
    /// How the click of point prompts is derived from the ground truth.
    pub click: ClickMode,
    /// `--session-objects`; None: each prompt kind's default ([`SessionObjects::default_for`]).
    #[serde(default)]
    pub session_objects: Option<SessionObjects>,
    /// Write every tracked object's masks as PNGs in the SA-V layout under
    /// `<out-dir>/masks/<model>/` (the official evaluators' prediction layout).
    #[serde(default)]
    pub save_masks: bool,
    /// Split problems (items left out) fail the setup instead of being reported.
    #[serde(default)]
    pub strict: bool,
    /// Shuffle the video order in phase A (`--shuffle-videos`, or implied by `--seed`).
    #[serde(default)]
    pub shuffle_videos: bool,
    /// `--seed` when given: the seed of the shuffle (else phase A draws one and records it).
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// `--test-mode` (already applied to the other options).
    #[serde(default)]
    pub test_mode: bool,
    /// `--disable-cudnn` (refused where cuDNN would run anyway).
    #[serde(default)]
    pub disable_cudnn: bool,
    /// Score only annotated frames with (frame - prompt frame) % N == 0; 0 = off.
    #[serde(default)]
    pub annotation_stride_frames: usize,
    /// Feed every Nth frame from the prompt frame; 1 = every frame.
    #[serde(default = "one")]
    pub input_frame_stride: usize,
    /// `--shard I/N`: the part of the work list this inference process runs (None: all of it).
    /// Setup writes None; a shard's inference process sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardSpec>,
    /// `--host-root`: where `/etc`, `/proc` and `/sys` are read for the host report, the Jetson
    /// capture and the unified-memory budget rule (`/` unless a fake tree was given).
    #[serde(default, skip_serializing_if = "HostRoot::is_system")]
    pub host_root: HostRoot,
}

fn one() -> usize {
    1
}

/// Frame rate of the split's frames (SA-V's `JPEGImages_24fps`; DAVIS and MOSE are 24 fps too):
/// what `input_fps` divides by `--input-frame-stride`.
pub const SOURCE_FPS: f64 = 24.0;

/// The default of TF32: on for CUDA devices of compute capability 8.0 and newer (Ampere, Jetson
/// Orin's 8.7, Hopper), which run f32 convolutions and matmuls on tensor cores with it; off
/// elsewhere (older GPUs have no TF32, the CPU none).
pub fn tf32_by_default(cuda: bool, compute_capability: Option<&str>) -> bool {
    let major = compute_capability
        .and_then(|c| c.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok());
    cuda && major.is_some_and(|m| m >= 8)
}

impl BenchOptions {
    /// The options with what depends on the probed device settled: TF32's default.
    pub fn with_device_defaults(&self, device: &DeviceInfo, cuda: bool) -> Self {
        let mut o = self.clone();
        if o.tf32_auto {
            o.tf32 = tf32_by_default(cuda, device.compute_capability.as_deref());
            o.tf32_auto = false;
        }
        o
    }

    /// Which objects share a session for a model of this prompt kind.
    pub fn session_objects_for(&self, kind: PromptKind) -> SessionObjects {
        self.session_objects
            .unwrap_or_else(|| SessionObjects::default_for(kind))
    }

    /// The session options of every tracked clip: fences and CUDA graphs resolved for the
    /// precision.
    pub fn session_options(&self) -> SessionOptions {
        let dtype = self.precision.dtype();
        SessionOptions {
            memory_fences: Some(self.memory_fence.resolve(dtype)),
            cuda_graph: self.cuda_graph.resolve(dtype),
            ..Default::default()
        }
    }
}

/// One object of the split as phase B needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub id: String,
    /// None: SA-V binary mask; Some(i): the palette index in a DAVIS-style label PNG.
    pub label: Option<u16>,
    /// (frame index, annotation PNG), ascending.
    pub annotations: Vec<(usize, PathBuf)>,
    pub prompt_frame: usize,
    /// (x, y) in video pixels
    pub point: (usize, usize),
    /// [x0, y0, x1, y1] inclusive, video pixels
    pub bbox: [usize; 4],
    pub prompt_area: usize,
}

impl ObjectMeta {
    /// The ground-truth mask on the prompt frame (the `mask` prompt).
    pub fn prompt_mask(&self) -> Result<crate::data::masks::Mask> {
        let (frame, path) = self
            .annotations
            .iter()
            .find(|(f, _)| *f == self.prompt_frame)
            .ok_or_else(|| {
                Error::Input(format!(
                    "object {} has no annotation on its prompt frame {}",
                    self.id, self.prompt_frame
                ))
            })?;
        self.track().load_mask(&Annotation {
            frame: *frame,
            path: path.clone(),
        })
    }

    pub fn track(&self) -> ObjectTrack {
        ObjectTrack {
            id: self.id.clone(),
            kind: match self.label {
                None => MaskKind::Binary,
                Some(l) => MaskKind::Label(l),
            },
            annotations: self
                .annotations
                .iter()
                .map(|(f, p)| Annotation {
                    frame: *f,
                    path: p.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoMeta {
    pub name: String,
    pub frames: Vec<PathBuf>,
    pub width: usize,
    pub height: usize,
    pub objects: Vec<ObjectMeta>,
    /// Frame cache file per inference side.
    pub caches: Vec<(usize, PathBuf)>,
}

impl VideoMeta {
    pub fn cache_for(&self, side: usize) -> Option<&Path> {
        self.caches
            .iter()
            .find(|(s, _)| *s == side)
            .map(|(_, p)| p.as_path())
    }
}

/// `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    pub split_dir: PathBuf,
    pub layout: String,
    pub videos: Vec<VideoMeta>,
    /// Problems found in the split (the named items were left out).
    pub issues: Vec<String>,
    /// The seed the video order was shuffled with (`--shuffle-videos` / `--seed`); None: the
    /// split's own order.
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// The video names in the order phase B runs them (after the shuffle and --limit-videos).
    #[serde(default)]
    pub video_order: Vec<String>,
}

/// Where a model's weights come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WeightsSource {
    Checkpoint {
        path: PathBuf,
    },
    /// Seeded random weights: `reason` says whether asked for or a demo fallback.
    Random {
        seed: u64,
        reason: String,
    },
}

impl WeightsSource {
    /// The `weights` column.
    pub fn label(&self) -> String {
        match self {
            WeightsSource::Checkpoint { .. } => "checkpoint".into(),
            WeightsSource::Random { reason, .. } => format!("random ({reason})"),
        }
    }
}

/// What phase A measured for one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelPlan {
    pub name: String,
    pub prompt: PromptKind,
    pub config: ModelConfig,
    pub weights: WeightsSource,
    pub load_ms: f64,
    /// Bytes of the model's tensors at the run's dtype (from the variant's key spec).
    pub weights_bytes: u64,
    /// Peak RSS during warm-up above the RSS after loading (activations, features, bank).
    pub activation_peak_bytes: u64,
    /// (memory-bank entries with memory features, RSS bytes) after each warm-up frame.
    pub rss_by_bank_size: Vec<(usize, u64)>,
    /// Bytes of one memory-bank entry (features + position encoding + low-res mask + pointer).
    pub bank_entry_bytes: u64,
    /// Most bank entries the bounded retention can hold for one object.
    pub bank_max_entries: usize,
    pub device_peak_alloc_bytes: Option<u64>,
    /// Predicted peak of the budgeted figure for one (video, object) of the longest video.
    pub predicted_peak_bytes: u64,
    pub fits_budget: bool,
    /// Why the convolution tuning pass of this model failed (setup went on; its unreached
    /// shapes got their algorithm in the warm-up).
    #[serde(default)]
    pub tuning_failed: Option<String>,
    /// Size and FNV-1a fingerprint of the checkpoint file (None for random weights): what
    /// `vosbench merge` compares to refuse shards that ran different weights.
    #[serde(default)]
    pub weights_fingerprint: Option<String>,
}

/// 64-bit FNV-1a: a stable fingerprint (not a security hash).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `<bytes>:<fnv1a64 of the content>` of a file.
pub fn file_fingerprint(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Fnv::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.write(&buf[..k]);
        n += k as u64;
    }
    Ok(format!("{n}:{:016x}", h.0))
}

/// `inference_config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceConfig {
    pub setup_pid: u32,
    /// Devices the setup process had opened when it wrote this file (the device layer's count).
    #[serde(default)]
    pub setup_devices_opened: usize,
    pub options: BenchOptions,
    pub device: DeviceInfo,
    /// Convolution algorithm tuning (cuDNN); false where it was not run or does not apply.
    pub cudnn_benchmark: bool,
    pub cudnn_note: String,
    /// Every convolution shape the models ran in setup and the algorithm it got (tuned, or the
    /// heuristic choice); phase B loads it. Empty on CPU.
    #[serde(default)]
    pub conv_tuning: crate::cuda::tuning::TuningTable,
    pub models: Vec<ModelPlan>,
    /// What is compared with the budget (`options.mem_budget_bytes`): `process_rss` (CPU),
    /// `device` (discrete GPU) or `system` (unified memory).
    pub budget_figure: BudgetFigure,
    pub setup_ms: f64,
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Input(format!(
            "cannot read {} ({e}); run the setup phase first (without --skip-setup)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Input(format!("{} does not parse: {e}", path.display())))
}

/// Write JSON atomically (temp + rename). Temp files of this name that a killed process left
/// are removed first.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("cannot serialize {}: {e}", path.display())))?;
    crate::host::disk::remove_dead_temps_of(path);
    // a temp name of this process: two processes writing the same file never share a temp file
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let res = std::fs::write(&tmp, text)
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if res.is_err() {
        // a full disk: leave the previous file, not a partial temp file
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_defaults_on_for_ampere_and_newer_cuda_only() {
        assert!(tf32_by_default(true, Some("8.7")), "Jetson Orin");
        assert!(tf32_by_default(true, Some("9.0")));
        assert!(tf32_by_default(true, Some("8.0")));
        assert!(!tf32_by_default(true, Some("7.2")), "Xavier");
        assert!(!tf32_by_default(true, None));
        assert!(!tf32_by_default(false, Some("8.7")));
    }

    #[test]
    fn tags_resolve_aliases_and_reject_bad_ones() {
        let m = parse_models(
            "sam2.1_base_plus_points, edgetam_bbox,sam2_base_points",
            None,
        )
        .unwrap();
        assert_eq!(m.len(), 2, "an alias of the same variant is not run twice");
        assert_eq!(m[0].name, "sam2.1_hiera_base_plus_points");
        assert_eq!(m[1].prompt, PromptKind::Bbox);
        assert_eq!(
            parse_models("edgetam_mask", None).unwrap()[0].prompt,
            PromptKind::Mask
        );
        assert!(parse_models("edgetam_segment", None).is_err());
        assert!(parse_models("sam9_points", None).is_err());
        assert!(parse_models("", None).is_err());
        let e = parse_models("edgetam_points", Some(512)).unwrap();
        assert_eq!(e[0].config.image_size, 512);
        assert_eq!(
            e[0].config.memory_attention.cross_attention.q_sizes,
            Some([32, 32])
        );
        assert!(parse_models("edgetam_points", Some(500)).is_err());
    }
}
