//! Convolution settings and the tuning table: which cuDNN algorithm each convolution shape runs.
//!
//! This part compiles in every build, so the benchmark can write and read tuning files and the
//! probe can print them on any machine; the engine that fills the table lives in
//! [`crate::cuda::cudnn_conv`] (cudnn builds only).
//!
//! The choices belong to a [`ConvTuner`], which whoever builds a model owns and hands to it. How
//! a shape gets its algorithm (first match wins), every choice kept in the tuner:
//! 1. a loaded table entry ([`ConvTuner::load_table`], from setup's tuning file) whose workspace
//!    fits;
//! 2. with tuning on, `cudnnFindConvolutionForwardAlgorithmEx` times the candidates on the real
//!    tensors with the workspace capped at the limit, and the fastest that fits wins; a search
//!    that cannot run (no memory for the capped workspace, or cuDNN refuses) falls back to 3 and
//!    the entry says why;
//! 3. otherwise cuDNN's heuristic ranking (`cudnnGetConvolutionForwardAlgorithm_v7`), first
//!    candidate whose workspace fits the limit (candle takes the first one whatever it needs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Convolution settings of a run (`--workspace-mb`, `--tf32`, `--enable-cudnn-tuning`), fixed
/// in its [`ConvTuner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvOptions {
    /// Upper bound of the one workspace arena all convolutions share.
    pub workspace_limit_bytes: usize,
    /// Allow TF32 tensor-core math for f32 convolutions (and, through candle, f32 matmuls).
    pub tf32: bool,
    /// Time the candidate algorithms of every new shape instead of trusting the heuristic.
    pub tune: bool,
}

impl ConvOptions {
    /// `--workspace-mb`, `--tf32`, and whether to search.
    pub fn new(workspace_mb: usize, tf32: bool, tune: bool) -> Self {
        Self {
            workspace_limit_bytes: workspace_mb << 20,
            tf32,
            tune,
        }
    }
}

impl Default for ConvOptions {
    fn default() -> Self {
        Self {
            workspace_limit_bytes: 256 << 20,
            tf32: false,
            tune: false,
        }
    }
}

/// One convolution as cuDNN sees it (NCHW input, KCRS filter).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Kernel height and width.
    pub r: usize,
    pub s: usize,
    pub pad: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
}

impl ConvShape {
    /// (out_h, out_w).
    pub fn out_hw(&self) -> (usize, usize) {
        let o = |i: usize, k: usize| {
            (i + 2 * self.pad).saturating_sub(self.dilation * (k - 1) + 1) / self.stride + 1
        };
        (o(self.h, self.r), o(self.w, self.s))
    }

    /// Multiply-adds of one call.
    pub fn macs(&self) -> u64 {
        let (oh, ow) = self.out_hw();
        (self.n * self.k * oh * ow) as u64 * (self.c / self.groups * self.r * self.s) as u64
    }

    /// `n×c×h×w -> k, r×s /stride pad dilation groups dtype`, for tables.
    pub fn describe(&self) -> String {
        format!(
            "{}x{}x{}x{} -> {}, {}x{} s{} p{} d{} g{} {}",
            self.n,
            self.c,
            self.h,
            self.w,
            self.k,
            self.r,
            self.s,
            self.stride,
            self.pad,
            self.dilation,
            self.groups,
            self.dtype
        )
    }
}

/// How an entry's algorithm was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Timed by the search within the workspace limit.
    Tuned,
    /// cuDNN's heuristic ranking (tuning off).
    Heuristic,
    /// Tuning was on but the search could not run; the heuristic choice (see `note`).
    Fallback,
    /// Taken from a tuning file.
    Loaded,
}

/// The algorithm one shape runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TuningEntry {
    pub shape: ConvShape,
    /// cuDNN's `cudnnConvolutionFwdAlgo_t` value.
    pub algo_id: u32,
    /// Its name without the `CUDNN_CONVOLUTION_FWD_ALGO_` prefix.
    pub algo: String,
    /// The math type the convolution runs with (`FMA`, `DEFAULT`, `TENSOR_OP`).
    pub math: String,
    /// Time of one call measured by the search (tuned entries only).
    pub time_ms: Option<f32>,
    /// Workspace the algorithm needs.
    pub workspace_bytes: u64,
    pub source: Source,
    /// Why a search fell back, or other remarks.
    pub note: Option<String>,
    /// The other candidates the search timed: (algorithm, ms, workspace bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<(String, f32, u64)>,
}

/// Every shape's choice; what setup writes and phase B loads.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TuningTable {
    /// Device name and cuDNN version the table was made on (a table from another card is still
    /// usable: entries are re-checked against the workspace limit, and cuDNN rejects nothing
    /// silently, but the timings mean little there).
    pub device: Option<String>,
    pub cudnn_version: Option<String>,
    pub options: ConvOptions,
    pub entries: Vec<TuningEntry>,
}

impl TuningTable {
    pub fn count(&self, source: Source) -> usize {
        self.entries.iter().filter(|e| e.source == source).count()
    }

    /// The table as aligned text: shape, algorithm, time, workspace, source.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{:<44} {:<22} {:>9} {:>10}  {}\n",
            "convolution (NxCxHxW -> K, RxS stride pad dil groups dtype)",
            "algorithm",
            "time",
            "workspace",
            "source"
        );
        for e in &self.entries {
            let t = e
                .time_ms
                .map(|t| format!("{:.3} ms", t))
                .unwrap_or_else(|| "-".into());
            let ws = format!("{:.1} MiB", e.workspace_bytes as f64 / (1u64 << 20) as f64);
            let src = match (&e.source, &e.note) {
                (src, Some(n)) => format!("{src:?}: {n}").to_lowercase(),
                (src, None) => format!("{src:?}").to_lowercase(),
            };
            s.push_str(&format!(
                "{:<44} {:<22} {:>9} {:>10}  {}\n",
                e.shape.describe(),
                format!("{} ({})", e.algo, e.math),
                t,
                ws,
                src
            ));
        }
        s
    }
}

/// The convolution algorithm choices of one model (or of every model one run builds): its
/// [`ConvOptions`] and, per [`ConvShape`], the [`TuningEntry`] chosen or loaded so far.
///
/// Whoever builds a model owns its tuner and hands it over at build time
/// (`crate::nn::ModelOptions`); every `nn::conv::Conv2d` of that model holds it, and the cuDNN
/// engine ([`crate::cuda::cudnn_conv`], cudnn builds) reads its options and choices when it plans
/// a shape and records what it chose. The benchmark's setup makes one with tuning on, runs its
/// warm-up and writes [`ConvTuner::table`]; phase B makes one with tuning off and
/// [`ConvTuner::load_table`]s that file. Two models with different tuners never see each other's
/// options or choices.
///
/// The options are fixed when the tuner is made (a run that wants other options makes another
/// tuner). Reading a choice takes the tuner's lock, which the engine does only when it plans a
/// shape it has not planned for this tuner (the per-call path reads [`ConvTuner::id`] and
/// [`ConvTuner::generation`], two plain loads).
pub struct ConvTuner {
    id: u64,
    options: ConvOptions,
    /// Bumped when choices are replaced from outside ([`ConvTuner::reset`],
    /// [`ConvTuner::load_table`]), so that plans made from the old choices are made again.
    generation: AtomicU64,
    choices: Mutex<BTreeMap<ConvShape, TuningEntry>>,
}

/// Identities of tuners (the engine keys its plans by them); a counter, it decides nothing.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl std::fmt::Debug for ConvTuner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvTuner")
            .field("id", &self.id)
            .field("options", &self.options)
            .field("choices", &self.lock().len())
            .finish()
    }
}

impl Default for ConvTuner {
    fn default() -> Self {
        Self::new(ConvOptions::default())
    }
}

impl ConvTuner {
    /// A tuner with no choices yet.
    pub fn new(options: ConvOptions) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            options,
            generation: AtomicU64::new(0),
            choices: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ConvShape, TuningEntry>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.choices.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This tuner's identity in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn options(&self) -> ConvOptions {
        self.options
    }

    /// Changes each time [`Self::reset`] or [`Self::load_table`] replaces choices.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn replaced(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Forget every choice (the next call of each shape chooses again).
    pub fn reset(&self) {
        self.lock().clear();
        self.replaced();
    }

    /// Use the entries of a tuning file for their shapes (marked [`Source::Loaded`]).
    pub fn load_table(&self, t: &TuningTable) {
        let mut choices = self.lock();
        for e in &t.entries {
            let mut e = e.clone();
            if e.source != Source::Loaded {
                e.note = Some(format!("{:?} in setup", e.source).to_lowercase());
            }
            e.source = Source::Loaded;
            choices.insert(e.shape.clone(), e);
        }
        drop(choices);
        self.replaced();
    }

    /// The choice for `shape`, if one was made or loaded.
    pub fn choice(&self, shape: &ConvShape) -> Option<TuningEntry> {
        self.lock().get(shape).cloned()
    }

    /// Record the choice for a shape (what the engine does once it has planned it).
    pub fn record(&self, entry: TuningEntry) {
        self.lock().insert(entry.shape.clone(), entry);
    }

    /// Every choice so far, sorted by shape.
    pub fn table(&self) -> TuningTable {
        TuningTable {
            device: None,
            cudnn_version: cudnn_version(),
            options: self.options,
            entries: self.lock().values().cloned().collect(),
        }
    }
}

/// One algorithm as the engine offers it to [`choose_algorithm`].
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// cuDNN's `cudnnConvolutionFwdAlgo_t` value and name.
    pub algo_id: u32,
    pub algo: String,
    /// Measured by the search (searched candidates only).
    pub time_ms: Option<f32>,
    pub workspace_bytes: u64,
}

/// The choice for a shape that has no recorded choice (rules 2 and 3 of the module docs): with
/// `tune`, the fastest candidate `search` returns (sorted fastest first, already filtered to the
/// workspace limit); when the search cannot run (`Err`, e.g. no memory for its scratch buffers)
/// or finds nothing within the limit, the `heuristic` choice, marked [`Source::Fallback`] with
/// the reason, so setup goes on with that shape. Without `tune`, the heuristic choice. Only an
/// error of the heuristic itself is an error. The cuDNN engine passes its real search and
/// heuristic; tests pass fakes.
pub fn choose_algorithm(
    shape: &ConvShape,
    math: &str,
    tune: bool,
    search: impl FnOnce() -> Result<Vec<Candidate>, String>,
    heuristic: impl FnOnce() -> candle_core::Result<Candidate>,
) -> candle_core::Result<TuningEntry> {
    let entry =
        |c: Candidate, source: Source, note: Option<String>, rest: &[Candidate]| TuningEntry {
            shape: shape.clone(),
            algo_id: c.algo_id,
            algo: c.algo,
            math: math.to_string(),
            time_ms: c.time_ms,
            workspace_bytes: c.workspace_bytes,
            source,
            note,
            candidates: rest
                .iter()
                .map(|r| (r.algo.clone(), r.time_ms.unwrap_or(0.0), r.workspace_bytes))
                .collect(),
        };
    if !tune {
        return Ok(entry(heuristic()?, Source::Heuristic, None, &[]));
    }
    let why = match search() {
        Ok(found) if !found.is_empty() => {
            let best = found[0].clone();
            return Ok(entry(best, Source::Tuned, None, &found[1..]));
        }
        Ok(_) => "no algorithm fits the workspace limit".to_string(),
        Err(why) => why,
    };
    let mut h = heuristic()?;
    h.time_ms = None;
    Ok(entry(h, Source::Fallback, Some(why), &[]))
}

/// Set candle's switch for reduced-precision (TF32) f32 matmuls, which `--tf32` also asks for.
/// This is candle's own process global (the cuBLAS math mode of every f32 matmul in the
/// process, and the f32 math of the fused attention kernel, which follows it), not a vosbench
/// setting: a run sets it once, from the same flag as its [`ConvOptions::tf32`], where it makes
/// its [`ConvTuner`]. Nothing happens in a build without CUDA.
pub fn set_candle_matmul_tf32(on: bool) {
    #[cfg(feature = "cuda")]
    candle_core::cuda_backend::set_gemm_reduced_precision_f32(on);
    #[cfg(not(feature = "cuda"))]
    let _ = on;
}

/// `major.minor.patch` of a `cudnnGetVersion()` value: `major*10000 + minor*100 + patch` from
/// cuDNN 9 on, `major*1000 + minor*100 + patch` up to cuDNN 8.
pub fn format_cudnn_version(v: usize) -> String {
    if v >= 10000 {
        format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    }
}

/// The oldest cuDNN a cudnn build runs with, as `cudnnGetVersion()` reports it: 9.0.0. The
/// bindings (cudarc's) are cuDNN 9's; cuDNN 8 (JetPack 5) is not supported.
pub const MIN_CUDNN_VERSION: usize = 90000;

/// Refuse a loaded cuDNN older than [`MIN_CUDNN_VERSION`] with a message that says what to do.
pub fn check_cudnn_version(v: usize) -> Result<(), String> {
    if v >= MIN_CUDNN_VERSION {
        return Ok(());
    }
    Err(format!(
        "the loaded cuDNN is {}, but this build needs cuDNN 9 or newer (JetPack 6); with cuDNN 8 (JetPack 5) build without cuDNN (--features cuda) or upgrade",
        format_cudnn_version(v)
    ))
}

/// `major.minor.patch` of the loaded cuDNN (cudnn builds only).
pub fn cudnn_version() -> Option<String> {
    #[cfg(feature = "cudnn")]
    {
        Some(format_cudnn_version(cudarc::cudnn::result::get_version()))
    }
    #[cfg(not(feature = "cudnn"))]
    {
        None
    }
}

/// Read a tuning file (the JSON of a [`ConvTuner::table`]).
pub fn read_table(path: &std::path::Path) -> crate::error::Result<TuningTable> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        crate::error::Error::Input(format!(
            "tuning file {} is not a vosbench tuning table: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(c: usize, g: usize) -> ConvShape {
        ConvShape {
            n: 1,
            c,
            h: 1024,
            w: 1024,
            k: c,
            r: 7,
            s: 7,
            pad: 3,
            stride: 4,
            dilation: 1,
            groups: g,
            dtype: "f32".into(),
        }
    }

    #[test]
    fn out_size_and_macs() {
        let s = shape(3, 1);
        assert_eq!(s.out_hw(), (256, 256));
        assert_eq!(s.macs(), 256 * 256 * 3 * 3 * 49);
        let d = shape(8, 8);
        assert_eq!(d.macs(), 256 * 256 * 8 * 49);
    }

    fn cand(id: u32, name: &str, ms: Option<f32>, ws: u64) -> Candidate {
        Candidate {
            algo_id: id,
            algo: name.into(),
            time_ms: ms,
            workspace_bytes: ws,
        }
    }

    #[test]
    fn a_failed_search_falls_back_to_the_heuristic_for_that_shape_only() {
        let s = shape(3, 1);
        let heur = || Ok(cand(0, "IMPLICIT_GEMM", None, 0));
        // The search runs out of memory for its scratch buffers: heuristic, recorded.
        let oom = choose_algorithm(
            &s,
            "FMA",
            true,
            || Err("no memory for a 256 MiB search workspace (OOM)".into()),
            heur,
        )
        .unwrap();
        assert_eq!(oom.source, Source::Fallback);
        assert_eq!(oom.algo, "IMPLICIT_GEMM");
        assert!(oom.note.as_deref().unwrap().contains("OOM"));
        // Nothing within the limit: heuristic too, with that reason.
        let none = choose_algorithm(&s, "FMA", true, || Ok(Vec::new()), heur).unwrap();
        assert_eq!(none.source, Source::Fallback);
        assert!(none.note.as_deref().unwrap().contains("workspace limit"));
        // A search that works: its fastest, the others kept as candidates.
        let ok = choose_algorithm(
            &s,
            "FMA",
            true,
            || {
                Ok(vec![
                    cand(1, "IMPLICIT_PRECOMP_GEMM", Some(0.2), 1024),
                    cand(2, "GEMM", Some(0.5), 4096),
                ])
            },
            || panic!("the heuristic is not asked when the search works"),
        )
        .unwrap();
        assert_eq!(
            (ok.source, ok.algo_id, ok.time_ms),
            (Source::Tuned, 1, Some(0.2))
        );
        assert_eq!(ok.candidates, vec![("GEMM".to_string(), 0.5, 4096)]);
        // Tuning off: the search is never run.
        let h = choose_algorithm(
            &s,
            "FMA",
            false,
            || panic!("no timed search without tuning"),
            heur,
        )
        .unwrap();
        assert_eq!((h.source, h.note), (Source::Heuristic, None));
        // Only the heuristic's own failure is an error.
        assert!(choose_algorithm(
            &s,
            "FMA",
            true,
            || Err("search failed".into()),
            || candle_core::bail!("cuDNN has no algorithm")
        )
        .is_err());
    }

    #[test]
    fn cudnn_versions_format_and_cudnn_8_is_refused() {
        assert_eq!(format_cudnn_version(90300), "9.3.0", "JetPack 6");
        assert_eq!(format_cudnn_version(91400), "9.14.0");
        assert_eq!(format_cudnn_version(8600), "8.6.0", "JetPack 5");
        assert!(check_cudnn_version(90300).is_ok());
        assert!(check_cudnn_version(90000).is_ok());
        let e = check_cudnn_version(8600).unwrap_err();
        assert!(e.contains("8.6.0") && e.contains("cuDNN 9"), "{e}");
    }

    #[test]
    fn table_round_trips_and_loads_as_loaded() {
        let e = TuningEntry {
            shape: shape(3, 1),
            algo_id: 1,
            algo: "IMPLICIT_PRECOMP_GEMM".into(),
            math: "FMA".into(),
            time_ms: Some(0.5),
            workspace_bytes: 1024,
            source: Source::Tuned,
            note: None,
            candidates: vec![("GEMM".into(), 0.9, 4096)],
        };
        let t = TuningTable {
            device: Some("card".into()),
            cudnn_version: Some("9.14.0".into()),
            options: ConvOptions::default(),
            entries: vec![e.clone()],
        };
        let json = serde_json::to_string(&t).unwrap();
        let back: TuningTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert!(t.render().contains("IMPLICIT_PRECOMP_GEMM (FMA)"));
        let tuner = ConvTuner::default();
        tuner.load_table(&t);
        let got = tuner.choice(&e.shape).unwrap();
        assert_eq!(got.source, Source::Loaded);
        assert_eq!(got.algo_id, 1);
        assert_eq!(got.note.as_deref(), Some("tuned in setup"));
        assert_eq!(tuner.table().count(Source::Loaded), 1);
        tuner.reset();
        assert!(tuner.choice(&e.shape).is_none());
    }
}
