//! Typed run options: what differs between runs or sessions of the same model (precision, memory
//! fences, the trunk's CUDA graph). Each is parsed once where it enters (a CLI flag, a config
//! file) and travels typed from there; an unknown value is an error, never a fallback.
//!
//! On disk (`inference_config.json`) every option is written as the text its flag takes, so a
//! config file reads like the command line that made it.

use crate::error::{Error, Result};
use candle_core::DType;
use std::fmt;
use std::str::FromStr;

/// Serialize through `Display` and deserialize through `FromStr`: the file holds the flag's text.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The model dtype (`--precision`). Softmax, interpolation and the tracker-facing outputs stay in
/// f32 whatever this is (docs/architecture.md, "Numerics decisions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    F32,
    F16,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// The canonical spelling (`f32`, `f16`, `bf16`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this precision can run on the CPU: candle's CPU matmul has no bf16 kernel.
    pub fn check_device(self, cpu: bool) -> Result<Self> {
        if cpu && self == Precision::Bf16 {
            return Err(Error::Input(
                "--precision bf16 needs a CUDA device (candle's CPU matmul has no bf16 kernel); use f32 or f16 on CPU".into(),
            ));
        }
        Ok(self)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// The canonical names and the spellings of PyTorch and the original harness
    /// (`float32`, `fp16`, `bfloat16`, ...).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(Error::Input(format!(
                "bad --precision '{other}': expected f32, f16 or bf16"
            ))),
        }
    }
}

serde_as_text!(Precision);

/// The points of a frame where a memory fence may wait for the device (see `FenceSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FencePoint {
    /// After the image encoder's trunk.
    Trunk,
    /// After the image encoder's neck.
    Neck,
    /// After memory conditioning (memory attention).
    MemoryConditioning,
    /// After the prompt encoder and mask decoder.
    Heads,
    /// After every Hiera block.
    HieraBlock,
    /// After every memory-attention layer.
    MemoryAttentionLayer,
}

impl FencePoint {
    /// Every point, in the order of a frame (coarse ones first).
    pub const ALL: [FencePoint; 6] = [
        FencePoint::Trunk,
        FencePoint::Neck,
        FencePoint::MemoryConditioning,
        FencePoint::Heads,
        FencePoint::HieraBlock,
        FencePoint::MemoryAttentionLayer,
    ];

    /// The name `--memory-fence` uses.
    pub fn name(self) -> &'static str {
        match self {
            FencePoint::Trunk => "trunk",
            FencePoint::Neck => "neck",
            FencePoint::MemoryConditioning => "memcond",
            FencePoint::Heads => "heads",
            FencePoint::HieraBlock => "block",
            FencePoint::MemoryAttentionLayer => "layer",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`FencePoint`]s: where a frame waits for the device so that the CUDA memory pool can
/// reuse what the frame freed (docs/performance.md, "Peak memory").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FenceSet(u8);

impl FenceSet {
    /// No fences.
    pub const NONE: FenceSet = FenceSet(0);

    /// Every point.
    pub fn all() -> FenceSet {
        FencePoint::ALL
            .iter()
            .fold(FenceSet::NONE, |s, &p| s.with(p))
    }

    /// What `--memory-fence auto` picks for a model run in `dtype`: in f32 the device, not the
    /// host, bounds a frame, so one wait after memory conditioning costs little and keeps the
    /// pool near the live size (SAM 2.1 tiny, H200: reserved peak 1376 -> 960 MiB, same FPS).
    /// In f16/bf16 the host issuing kernels bounds a frame, a wait loses the overlap (tiny bf16:
    /// 45 -> 37 FPS), and the pool's peak is already small: none.
    pub fn auto(dtype: DType) -> FenceSet {
        match dtype {
            DType::F32 => FenceSet::NONE.with(FencePoint::MemoryConditioning),
            _ => FenceSet::NONE,
        }
    }

    /// This set and `point`.
    pub fn with(self, point: FencePoint) -> FenceSet {
        FenceSet(self.0 | point.bit())
    }

    pub fn contains(self, point: FencePoint) -> bool {
        self.0 & point.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for FenceSet {
    /// `off`, or the comma list of point names in frame order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("off");
        }
        let names: Vec<&str> = FencePoint::ALL
            .iter()
            .filter(|p| self.contains(**p))
            .map(|p| p.name())
            .collect();
        f.write_str(&names.join(","))
    }
}

serde_as_text!(FenceSet);

impl FromStr for FenceSet {
    type Err = Error;

    /// `off` (or `none`), `all`, or a comma-separated list of point names.
    fn from_str(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        match spec {
            "off" | "none" => return Ok(FenceSet::NONE),
            "all" => return Ok(FenceSet::all()),
            _ => {}
        }
        let mut set = FenceSet::NONE;
        for name in spec.split(',').map(str::trim) {
            let Some(p) = FencePoint::ALL.iter().find(|p| p.name() == name) else {
                return Err(Error::Input(format!(
                    "--memory-fence '{spec}': unknown point '{name}' (expected auto, off, all or a \
                     comma list of {})",
                    FencePoint::ALL.map(FencePoint::name).join(", ")
                )));
            };
            set = set.with(*p);
        }
        Ok(set)
    }
}

/// `--memory-fence` as given: `auto` (resolved per precision, [`FenceSet::auto`]) or a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FenceSpec {
    #[default]
    Auto,
    Set(FenceSet),
}

impl FenceSpec {
    /// The fences a model run in `dtype` waits at.
    pub fn resolve(self, dtype: DType) -> FenceSet {
        match self {
            FenceSpec::Auto => FenceSet::auto(dtype),
            FenceSpec::Set(s) => s,
        }
    }
}

impl fmt::Display for FenceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FenceSpec::Auto => f.write_str("auto"),
            FenceSpec::Set(s) => s.fmt(f),
        }
    }
}

impl FromStr for FenceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.trim() == "auto" {
            Ok(FenceSpec::Auto)
        } else {
            s.parse().map(FenceSpec::Set)
        }
    }
}

serde_as_text!(FenceSpec);

/// `--cuda-graph`: replay the image encoder's trunk as a CUDA graph. Measured on an H200
/// (docs/performance.md, "CUDA graphs"): in bf16 the graphed trunk kept the reserved peak of
/// SAM 2.1 where it was and made EdgeTAM 2.3x faster; in f32 it added the trunk's working set in
/// the graph's own memory pool (SAM 2.1 tiny with TF32: reserved peak 1024 -> 1376 MiB) for 0-9 %
/// more speed on SAM 2.1, so `auto` leaves f32 eager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GraphMode {
    /// On in f16/bf16, off in f32.
    #[default]
    Auto,
    On,
    Off,
}

impl GraphMode {
    /// Whether a model run in `dtype` uses CUDA graphs (trunk and neck, tracked-frame step).
    pub fn resolve(self, dtype: DType) -> bool {
        match self {
            GraphMode::On => true,
            GraphMode::Off => false,
            GraphMode::Auto => matches!(dtype, DType::F16 | DType::BF16),
        }
    }
}

impl fmt::Display for GraphMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GraphMode::Auto => "auto",
            GraphMode::On => "on",
            GraphMode::Off => "off",
        })
    }
}

impl FromStr for GraphMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "auto" => Ok(GraphMode::Auto),
            "on" => Ok(GraphMode::On),
            "off" => Ok(GraphMode::Off),
            other => Err(Error::Input(format!(
                "--cuda-graph '{other}': expected auto, on or off"
            ))),
        }
    }
}

serde_as_text!(GraphMode);

/// `--postprocessing`: the `apply_postprocessing` switch of the official
/// `build_sam2_video_predictor` (`sam2/build_sam.py`). `On` is that function's default and
/// `vosbench track`'s: small holes of the low-res masks are filled (the variant's
/// `fill_hole_area`), the masks of prompted frames are binarized before the memory encoder
/// (`binarize_mask_from_pts_for_mem_enc`), and a single-mask decoder output falls back to the best
/// multimask output when it is unstable (`dynamic_multimask_via_stability`). `Off` is what the
/// official `tools/vos_inference.py` builds unless given `--apply_postprocessing`, so the
/// published VOS numbers come from it: none of the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PostProcessing {
    #[default]
    On,
    Off,
}

impl PostProcessing {
    /// Largest background region of a low-res mask that is filled (0: no hole filling).
    pub fn fill_hole_area(self, tracker: &super::TrackerConfig) -> usize {
        match self {
            PostProcessing::On => tracker.fill_hole_area,
            PostProcessing::Off => 0,
        }
    }

    /// Whether the memory encoder sees a prompted frame's mask binarized (`> 0`) rather than
    /// through the sigmoid.
    pub fn binarize_mask_from_pts_for_mem_enc(self, tracker: &super::TrackerConfig) -> bool {
        match self {
            PostProcessing::On => tracker.binarize_mask_from_pts_for_mem_enc,
            PostProcessing::Off => false,
        }
    }

    /// Whether the mask decoder replaces an unstable single-mask output by its best multimask
    /// output.
    pub fn dynamic_multimask_via_stability(self) -> bool {
        self == PostProcessing::On
    }
}

impl fmt::Display for PostProcessing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PostProcessing::On => "on",
            PostProcessing::Off => "off",
        })
    }
}

impl FromStr for PostProcessing {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "on" => Ok(PostProcessing::On),
            "off" => Ok(PostProcessing::Off),
            other => Err(Error::Input(format!(
                "--postprocessing '{other}': expected on or off"
            ))),
        }
    }
}

serde_as_text!(PostProcessing);

/// `--object-batching`: how a session runs the per-object work of a tracked frame (memory
/// attention, SAM heads, memory encoder) when it holds several objects. `Batched` stacks the
/// objects on the batch dimension (memory attention in groups of objects whose memory banks have
/// the same layout); `Looped` runs one object after the other, as the official per-object
/// predictor does. Both give the same masks (a test measures the difference); the loop is kept
/// for that test and for speed comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ObjectBatching {
    #[default]
    Batched,
    Looped,
}

impl fmt::Display for ObjectBatching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectBatching::Batched => "batched",
            ObjectBatching::Looped => "looped",
        })
    }
}

impl FromStr for ObjectBatching {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "batched" => Ok(ObjectBatching::Batched),
            "looped" => Ok(ObjectBatching::Looped),
            other => Err(Error::Input(format!(
                "--object-batching '{other}': expected batched or looped"
            ))),
        }
    }
}

serde_as_text!(ObjectBatching);

/// `--shard I/N`: shard `index` of `count` (0 <= index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl ShardSpec {
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::Input(format!(
                "bad shard {index}/{count}: expected I/N with N >= 1 and 0 <= I < N"
            )));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Input(format!("bad --shard '{s}': expected I/N, e.g. 0/4"));
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse::<usize>().map_err(|_| bad())?;
        let n = n.trim().parse::<usize>().map_err(|_| bad())?;
        Self::new(i, n).map_err(|_| {
            Error::Input(format!(
                "bad --shard '{s}': the index must be below the count (0 <= I < N)"
            ))
        })
    }
}

serde_as_text!(ShardSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_spellings_and_round_trip() {
        for (s, p) in [
            ("f32", Precision::F32),
            ("float32", Precision::F32),
            ("fp16", Precision::F16),
            ("float16", Precision::F16),
            ("bfloat16", Precision::Bf16),
            (" bf16 ", Precision::Bf16),
        ] {
            assert_eq!(s.parse::<Precision>().unwrap(), p, "{s}");
        }
        for p in Precision::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), p);
        }
        match "f64".parse::<Precision>() {
            Err(Error::Input(m)) => {
                assert_eq!(m, "bad --precision 'f64': expected f32, f16 or bf16")
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Precision>("\"int8\"").is_err());
        assert!(Precision::Bf16.check_device(true).is_err());
        assert_eq!(
            Precision::Bf16.check_device(false).unwrap(),
            Precision::Bf16
        );
        assert_eq!(Precision::F16.dtype(), DType::F16);
    }

    #[test]
    fn fences_parse_print_and_resolve() {
        let s: FenceSet = "memcond, heads".parse().unwrap();
        assert!(s.contains(FencePoint::MemoryConditioning) && s.contains(FencePoint::Heads));
        assert!(!s.contains(FencePoint::Trunk));
        assert_eq!(s.to_string(), "memcond,heads");
        assert_eq!("off".parse::<FenceSet>().unwrap(), FenceSet::NONE);
        assert_eq!(FenceSet::NONE.to_string(), "off");
        assert_eq!(
            "all".parse::<FenceSet>().unwrap().to_string(),
            "trunk,neck,memcond,heads,block,layer"
        );
        match "trunk,lunch".parse::<FenceSet>() {
            Err(Error::Input(m)) => assert!(m.contains("unknown point 'lunch'"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(FenceSpec::Auto.resolve(DType::F32).to_string(), "memcond");
        assert!(FenceSpec::Auto.resolve(DType::BF16).is_empty());
        let spec: FenceSpec = "trunk".parse().unwrap();
        assert_eq!(spec.resolve(DType::BF16).to_string(), "trunk");
        for text in ["auto", "off", "trunk,layer"] {
            let spec: FenceSpec = text.parse().unwrap();
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<FenceSpec>(&json).unwrap(), spec);
        }
        assert!(serde_json::from_str::<FenceSpec>("\"sometimes\"").is_err());
    }

    #[test]
    fn postprocessing_and_batching_parse_and_apply() {
        let cfg = crate::config::ModelConfig::from_json_str(
            include_str!("../../tests/models/sam2.1_test.json"),
            "sam2.1_test.json",
        )
        .unwrap();
        let t = &cfg.tracker;
        assert_eq!("on".parse::<PostProcessing>().unwrap(), PostProcessing::On);
        assert_eq!(PostProcessing::default(), PostProcessing::On);
        let off: PostProcessing = " off ".parse().unwrap();
        assert_eq!(off.to_string(), "off");
        assert_eq!(PostProcessing::On.fill_hole_area(t), 8);
        assert_eq!(off.fill_hole_area(t), 0);
        assert!(PostProcessing::On.binarize_mask_from_pts_for_mem_enc(t));
        assert!(!off.binarize_mask_from_pts_for_mem_enc(t));
        assert!(PostProcessing::On.dynamic_multimask_via_stability());
        assert!(!off.dynamic_multimask_via_stability());
        assert!("yes".parse::<PostProcessing>().is_err());
        assert_eq!(ObjectBatching::default(), ObjectBatching::Batched);
        assert_eq!(
            "looped".parse::<ObjectBatching>().unwrap(),
            ObjectBatching::Looped
        );
        assert_eq!(ObjectBatching::Looped.to_string(), "looped");
        assert!("loop".parse::<ObjectBatching>().is_err());
    }

    #[test]
    fn graph_mode_resolves_per_precision() {
        assert!(!GraphMode::Auto.resolve(DType::F32));
        assert!(GraphMode::Auto.resolve(DType::BF16));
        assert!(GraphMode::Auto.resolve(DType::F16));
        assert!(GraphMode::On.resolve(DType::F32));
        assert!(!GraphMode::Off.resolve(DType::BF16));
        assert_eq!(" auto ".parse::<GraphMode>().unwrap(), GraphMode::Auto);
        match "yes".parse::<GraphMode>() {
            Err(Error::Input(m)) => assert_eq!(m, "--cuda-graph 'yes': expected auto, on or off"),
            other => panic!("{other:?}"),
        }
        for g in [GraphMode::Auto, GraphMode::On, GraphMode::Off] {
            let json = serde_json::to_string(&g).unwrap();
            assert_eq!(serde_json::from_str::<GraphMode>(&json).unwrap(), g);
        }
        assert!(serde_json::from_str::<GraphMode>("\"maybe\"").is_err());
    }

    fn parse(s: &str) -> Result<FenceSet> {
        s.parse()
    }

    fn from_arg(s: &str, dtype: DType) -> Result<FenceSet> {
        Ok(s.parse::<FenceSpec>()?.resolve(dtype))
    }

    #[test]
    fn fence_sets_parse_print_and_resolve() {
        let all = parse("all").unwrap();
        for p in FencePoint::ALL {
            assert!(all.contains(p), "{p:?}");
            assert!(!parse("off").unwrap().contains(p));
            let one = parse(p.name()).unwrap();
            assert_eq!(one, FenceSet::NONE.with(p));
            assert_eq!(one.to_string(), p.name());
        }
        assert_eq!(all.to_string(), "trunk,neck,memcond,heads,block,layer");
        // any order, spaces allowed; printed in frame order
        let s = parse(" layer , trunk,memcond").unwrap();
        assert_eq!(s.to_string(), "trunk,memcond,layer");
        assert_eq!(parse(&s.to_string()).unwrap(), s);
        assert_eq!(FenceSet::NONE.to_string(), "off");
        assert!(parse("none").unwrap().is_empty());

        assert_eq!(from_arg("auto", DType::F32).unwrap().to_string(), "memcond");
        for dt in [DType::F16, DType::BF16] {
            assert!(from_arg("auto", dt).unwrap().is_empty(), "{dt:?}");
        }
        assert_eq!(
            from_arg("heads", DType::BF16).unwrap(),
            FenceSet::NONE.with(FencePoint::Heads)
        );
    }

    #[test]
    fn unknown_fence_points_are_input_errors() {
        for bad in ["", "trunk,", "Trunk", "auto,trunk", "memory"] {
            match parse(bad) {
                Err(Error::Input(m)) => {
                    assert!(
                        m.starts_with(&format!("--memory-fence '{}'", bad.trim())),
                        "{m}"
                    );
                    assert!(
                        m.contains("trunk, neck, memcond, heads, block, layer"),
                        "{m}"
                    );
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_graph_flag_resolves_per_precision() {
        let from_arg = |s: &str, dt: DType| s.parse::<GraphMode>().map(|g| g.resolve(dt));
        assert!(!from_arg("auto", DType::F32).unwrap());
        assert!(from_arg("auto", DType::BF16).unwrap());
        assert!(from_arg(" auto ", DType::F16).unwrap());
        assert!(from_arg("on", DType::F32).unwrap());
        assert!(!from_arg("off", DType::BF16).unwrap());
        match from_arg("yes", DType::F32) {
            Err(Error::Input(m)) => {
                assert_eq!(m, "--cuda-graph 'yes': expected auto, on or off")
            }
            other => panic!("{other:?}"),
        }
    }
}
