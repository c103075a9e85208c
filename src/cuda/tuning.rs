//! Convolution settings and the tuning table: which cuDNN algorithm each convolution shape runs.
//!
//! This part compiles in every build, so the benchmark can write and read tuning files and the
//! probe can print them on any machine; the engine that fills the table lives in
//! [`crate::cuda::cudnn_conv`] (cudnn builds only).
//!
//! How a shape gets its algorithm (first match wins), every choice cached for the process:
//! 1. a loaded table entry ([`load_table`], from setup's tuning file) whose workspace fits;
//! 2. with tuning on, `cudnnFindConvolutionForwardAlgorithmEx` times the candidates on the real
//!    tensors with the workspace capped at the limit, and the fastest that fits wins; a search
//!    that cannot run (no memory for the capped workspace, or cuDNN refuses) falls back to 3 and
//!    the entry says why;
//! 3. otherwise cuDNN's heuristic ranking (`cudnnGetConvolutionForwardAlgorithm_v7`), first
//!    candidate whose workspace fits the limit (candle takes the first one whatever it needs).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Process-wide convolution settings (`--workspace-mb`, `--tf32`, `--enable-cudnn-tuning`).
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

struct State {
    options: ConvOptions,
    choices: BTreeMap<ConvShape, TuningEntry>,
}

static STATE: Mutex<State> = Mutex::new(State {
    options: ConvOptions {
        workspace_limit_bytes: 256 << 20,
        tf32: false,
        tune: false,
    },
    choices: BTreeMap::new(),
});

fn state() -> std::sync::MutexGuard<'static, State> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Set the process-wide options. Cached plans whose choice no longer holds (another workspace
/// limit or math mode) are rebuilt on their next call; choices made so far are kept unless
/// [`reset`] drops them.
pub fn set_options(o: ConvOptions) {
    state().options = o;
    #[cfg(feature = "cuda")]
    candle_core::cuda_backend::set_gemm_reduced_precision_f32(o.tf32);
    #[cfg(feature = "cudnn")]
    crate::cuda::cudnn_conv::invalidate_plans();
}

pub fn options() -> ConvOptions {
    state().options
}

/// Forget every choice and cached plan (benchmarks switch between heuristic and tuned this way).
pub fn reset() {
    state().choices.clear();
    #[cfg(feature = "cudnn")]
    crate::cuda::cudnn_conv::invalidate_plans();
}

/// Use the entries of a tuning file for their shapes (marked [`Source::Loaded`]).
pub fn load_table(t: &TuningTable) {
    let mut st = state();
    for e in &t.entries {
        let mut e = e.clone();
        if e.source != Source::Loaded {
            e.note = Some(format!("{:?} in setup", e.source).to_lowercase());
        }
        e.source = Source::Loaded;
        st.choices.insert(e.shape.clone(), e);
    }
    drop(st);
    #[cfg(feature = "cudnn")]
    crate::cuda::cudnn_conv::invalidate_plans();
}

/// The choice for `shape`, if one was made or loaded.
pub fn choice(shape: &ConvShape) -> Option<TuningEntry> {
    state().choices.get(shape).cloned()
}

/// Record the choice for a shape.
pub fn record(entry: TuningEntry) {
    state().choices.insert(entry.shape.clone(), entry);
}

/// Every choice so far, sorted by shape.
pub fn table() -> TuningTable {
    let st = state();
    TuningTable {
        device: None,
        cudnn_version: cudnn_version(),
        options: st.options,
        entries: st.choices.values().cloned().collect(),
    }
}

/// `major.minor.patch` of the loaded cuDNN (cudnn builds only).
pub fn cudnn_version() -> Option<String> {
    #[cfg(feature = "cudnn")]
    {
        let v = cudarc::cudnn::result::get_version();
        Some(format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100))
    }
    #[cfg(not(feature = "cudnn"))]
    {
        None
    }
}

/// Read a tuning file (the JSON [`table`] writes).
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
        load_table(&t);
        let got = choice(&e.shape).unwrap();
        assert_eq!(got.source, Source::Loaded);
        assert_eq!(got.algo_id, 1);
        assert_eq!(got.note.as_deref(), Some("tuned in setup"));
        assert_eq!(table().count(Source::Loaded), 1);
        reset();
        assert!(choice(&e.shape).is_none());
    }
}
