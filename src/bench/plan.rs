//! What both phases share: the benchmark options, the model tags, and the files phase A writes
//! for phase B (`metadata.json`, `inference_config.json`).

use crate::bench::mem::{BudgetFigure, DeviceInfo, MemBudget};
use crate::config::{FenceSpec, GraphMode, ModelConfig, Precision, Registry, ShardSpec};
use crate::data::prompts::ClickMode;
use crate::data::sav::{Annotation, MaskKind, ObjectTrack};
use crate::error::{Error, Result};
use crate::tracker::session::SessionOptions;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable set on the re-executed inference process (its value: `inference`).
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
}

impl PromptKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PromptKind::Points => "points",
            PromptKind::Bbox => "bbox",
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
                "bad model tag '{given}': expected <variant>_points or <variant>_bbox"
            ))
        })?;
        let prompt = match prompt {
            "points" | "point" => PromptKind::Points,
            "bbox" | "box" => PromptKind::Bbox,
            other => {
                return Err(Error::Input(format!(
                    "bad model tag '{given}': prompt '{other}' is not points or bbox"
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
    /// TF32 allowed for f32 convolutions and matmuls.
    pub tf32: bool,
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
    /// `--shard I/N`: the part of the work list this inference process runs (None: all of it).
    /// Setup writes None; a shard's inference process sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardSpec>,
}

impl BenchOptions {
    /// The session options of every tracked clip: fences and trunk graph resolved for the
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
    /// RSS growth from loading the weights.
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

/// Write JSON atomically (temp + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("cannot serialize {}: {e}", path.display())))?;
    // a temp name of this process: two processes writing the same file never share a temp file
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_models("edgetam_mask", None).is_err());
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
