//! `vosbench bench --objects-sweep 1,2,4,8,16`: frame time and peak memory against the number of
//! objects tracked in one session.
//!
//! For each model and each object count N, a synthetic video ([`crate::data::synth`], one video
//! of `--sweep-frames` frames at the model's input side, N objects) is tracked in ONE session
//! with all N objects prompted on frame 0 (each object's own mask on that frame, or a click
//! inside it; an object not visible on frame 0 gets a disk at its own place on a grid, so every
//! count has exactly N objects), once with the objects' heads batched and once looped
//! ([`ObjectBatching`]). Timing follows `vosbench track`: a frame's time runs from the end of the
//! previous frame's handling (device synchronised) to the end of its own, the prompt frame has
//! none, and the first `--warmup-frames` tracked frames are left out. Peak memory is the device
//! allocator's (CUDA) and the process RSS, both reset before each session.
//!
//! Output in the out-dir: `objects_sweep.csv` (one row per model, N and batching; rewritten after
//! every row) and `objects_sweep.json` (the options and the same rows); `vosbench plot` draws
//! both figures from the CSV.

use crate::bench::mem::DeviceMeter;
use crate::bench::model::{build_model, conv_options};
use crate::bench::plan::{BenchOptions, ModelTag};
use crate::config::ObjectBatching;
use crate::cuda::tuning::{self, ConvTuner};
use crate::data::masks::{read_mask_png, write_mask_png, Mask};
use crate::data::prompts::interior_point;
use crate::data::synth::{write_split, SynthOptions};
use crate::error::{Error, Result};
use crate::exec::EnvSwitches;
use crate::host::procfs::{to_mib, HostSampler};
use crate::nn::ModelOptions;
use crate::tracker::session::{Prompt, Session, SessionOptions};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

pub const SWEEP_CSV: &str = "objects_sweep.csv";
pub const SWEEP_JSON: &str = "objects_sweep.json";
/// The most objects one sweep step may ask for (the synthetic videos' limit).
pub const MAX_OBJECTS: usize = 200;

/// `--objects-sweep`: object counts, ascending, each once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCounts(Vec<usize>);

impl ObjectCounts {
    pub fn counts(&self) -> &[usize] {
        &self.0
    }
}

impl FromStr for ObjectCounts {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let n: usize = part.parse().map_err(|_| {
                Error::Input(format!(
                    "--objects-sweep '{s}': '{part}' is not a number of objects"
                ))
            })?;
            if n == 0 || n > MAX_OBJECTS {
                return Err(Error::Input(format!(
                    "--objects-sweep '{s}': {n} objects is outside 1..={MAX_OBJECTS}"
                )));
            }
            v.push(n);
        }
        if v.is_empty() {
            return Err(Error::Input(format!(
                "--objects-sweep '{s}': expected a comma list of object counts, e.g. 1,2,4,8"
            )));
        }
        v.sort_unstable();
        v.dedup();
        Ok(ObjectCounts(v))
    }
}

/// How the sweep prompts its objects on frame 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SweepPrompt {
    /// Each object's mask (`add_new_mask`), as the VOS protocol prompts.
    Mask,
    /// One positive click inside each object.
    Point,
}

impl SweepPrompt {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepPrompt::Mask => "mask",
            SweepPrompt::Point => "point",
        }
    }
}

/// What the sweep runs, besides the benchmark options (models, precision, device, weights,
/// warm-up frames, out-dir, seed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSpec {
    pub counts: ObjectCounts,
    /// Frames of each synthetic video.
    pub frames: usize,
    pub prompt: SweepPrompt,
    /// Where the synthetic videos are written (reused when already there).
    pub videos_dir: PathBuf,
}

impl SweepSpec {
    /// Check the frame count against the warm-up (at least two timed frames must remain).
    pub fn check(&self, warmup_frames: usize) -> Result<()> {
        if self.frames < warmup_frames + 3 {
            return Err(Error::Input(format!(
                "--sweep-frames {} leaves no timed frames after the prompt frame and {warmup_frames} warm-up frames (need at least {})",
                self.frames,
                warmup_frames + 3
            )));
        }
        Ok(())
    }
}

/// One sweep measurement: a model, an object count and a batching mode.
#[allow(non_snake_case)]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    pub model: String,
    /// `checkpoint` or `random (<reason>)`, as the benchmark's `weights` column.
    pub weights: String,
    pub device: String,
    pub precision: String,
    pub image_size: usize,
    pub objects: usize,
    /// `batched` or `looped`.
    pub batching: String,
    pub prompt: String,
    /// Frames of the video (the prompt frame included).
    pub frames: usize,
    pub warmup_frames: usize,
    /// Frames whose time is in the figures below.
    pub timed_frames: usize,
    pub frame_ms_mean: Option<f64>,
    pub frame_ms_p50: Option<f64>,
    /// 1000 / frame_ms_mean: frames per second.
    pub fps: Option<f64>,
    /// objects x fps: object-frames per second.
    pub object_fps: Option<f64>,
    /// Device allocator peaks during the session (CUDA; empty on CPU).
    pub gpu_peak_alloc_MiB: Option<f64>,
    pub gpu_peak_reserved_MiB: Option<f64>,
    /// Process peak RSS during the session.
    pub cpu_peak_rss_MiB: Option<f64>,
    /// Image-encoder passes of the session (one per frame, whatever N).
    pub image_encoder_passes: usize,
    /// `ok` or `error`.
    pub status: String,
    pub error: String,
}

impl SweepRow {
    /// The memory figure the plot shows: the device's peak allocation, else the process RSS.
    #[allow(non_snake_case)]
    pub fn peak_MiB(&self) -> Option<f64> {
        self.gpu_peak_alloc_MiB.or(self.cpu_peak_rss_MiB)
    }
}

/// Read an objects-sweep CSV.
pub fn read_sweep_rows(path: &Path) -> Result<Vec<SweepRow>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    r.deserialize::<SweepRow>()
        .map(|rec| rec.map_err(|e| Error::Input(format!("cannot parse {}: {e}", path.display()))))
        .collect()
}

/// Write the rows as CSV and, with the options, as JSON (each through a temp file and a
/// rename, so a killed sweep leaves whole files).
pub fn write_sweep(out_dir: &Path, spec: &SweepSpec, rows: &[SweepRow]) -> Result<()> {
    let csv_path = out_dir.join(SWEEP_CSV);
    let tmp = out_dir.join(format!("{SWEEP_CSV}.tmp"));
    {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
        for r in rows {
            w.serialize(r)
                .map_err(|e| Error::Other(format!("{}: {e}", tmp.display())))?;
        }
        w.flush().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &csv_path).map_err(|e| Error::io(&csv_path, e))?;
    let json_path = out_dir.join(SWEEP_JSON);
    let tmp = out_dir.join(format!("{SWEEP_JSON}.tmp"));
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "spec": spec,
        "rows": rows,
    }))
    .map_err(|e| Error::Other(format!("{}: {e}", json_path.display())))?;
    std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &json_path).map_err(|e| Error::io(&json_path, e))
}

/// Mean and median of frame times (ms).
pub fn frame_stats(ms: &[f64]) -> (Option<f64>, Option<f64>) {
    if ms.is_empty() {
        return (None, None);
    }
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let mut s = ms.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let p50 = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (Some(mean), Some(p50))
}

/// A filled disk of radius `r` at (cx, cy) on a `side` square.
fn disk(side: usize, cx: usize, cy: usize, r: usize) -> Mask {
    let mut m = Mask::empty(side, side);
    let r2 = (r * r) as isize;
    for y in cy.saturating_sub(r)..(cy + r + 1).min(side) {
        for x in cx.saturating_sub(r)..(cx + r + 1).min(side) {
            let (dx, dy) = (x as isize - cx as isize, y as isize - cy as isize);
            if dx * dx + dy * dy <= r2 {
                m.data[y * side + x] = true;
            }
        }
    }
    m
}

/// The frame-0 masks of `n` objects on a `side` square video: the synthetic objects visible on
/// frame 0 (from its annotations), then disks on a grid for the rest.
pub fn frame0_masks(ann_dir: &Path, side: usize, n: usize) -> Result<Vec<Mask>> {
    let mut masks = Vec::new();
    if ann_dir.is_dir() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(ann_dir)
            .map_err(|e| Error::io(ann_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            let p = d.join("00000.png");
            if masks.len() < n && p.is_file() {
                let m = read_mask_png(&p)?;
                if m.area() > 0 && (m.width, m.height) == (side, side) {
                    masks.push(m);
                }
            }
        }
    }
    let cells = (n as f64).sqrt().ceil() as usize;
    let step = side / cells.max(1);
    let r = (step / 4).max(2);
    let mut k = 0;
    while masks.len() < n {
        let (gx, gy) = (k % cells, (k / cells) % cells);
        masks.push(disk(side, gx * step + step / 2, gy * step + step / 2, r));
        k += 1;
    }
    Ok(masks)
}

/// The folder of the synthetic video of `n` objects at `side`.
fn video_dir(spec: &SweepSpec, side: usize, n: usize) -> PathBuf {
    spec.videos_dir
        .join(format!("s{side}_n{n}_f{}", spec.frames))
}

/// Where the sweep leaves the frame-0 masks it prompted with, `001.png` ... (object ids 1..=N),
/// so another engine (tests/gpu/objects_vs_torch.sh) prompts the same objects.
pub fn prompts_dir(spec: &SweepSpec, side: usize, n: usize) -> PathBuf {
    video_dir(spec, side, n).join("prompts")
}

fn write_prompt_masks(dir: &Path, masks: &[Mask]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (k, m) in masks.iter().enumerate() {
        write_mask_png(&dir.join(format!("{:03}.png", k + 1)), m)?;
    }
    Ok(())
}

/// Write (or reuse) the synthetic video of `n` objects at `side`; returns its frames folder and
/// its annotations folder.
fn sweep_video(spec: &SweepSpec, side: usize, n: usize, seed: u64) -> Result<(PathBuf, PathBuf)> {
    let dir = video_dir(spec, side, n);
    let stamp = dir.join("sweep_video.txt");
    let want = format!(
        "frames={} side={side} objects={n} seed={seed}\n",
        spec.frames
    );
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|s| s == want);
    if !fresh {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        write_split(
            &dir,
            &SynthOptions {
                videos: 1,
                frames: spec.frames,
                width: side,
                height: side,
                seed,
                objects: n,
            },
        )?;
        std::fs::write(&stamp, &want).map_err(|e| Error::io(&stamp, e))?;
    }
    Ok((
        dir.join("JPEGImages_24fps").join("synth_000"),
        dir.join("Annotations_6fps").join("synth_000"),
    ))
}

/// Track one session of `masks.len()` objects and measure it.
#[allow(clippy::too_many_arguments)]
fn measure(
    model: &crate::sam2::sam2_base::Sam2Base,
    frames_dir: &Path,
    masks: &[Mask],
    batching: ObjectBatching,
    opts: &BenchOptions,
    spec: &SweepSpec,
    device: &Device,
    meter: &DeviceMeter,
    sampler: &HostSampler,
    row: &mut SweepRow,
) -> Result<()> {
    let session_opts = SessionOptions {
        object_batching: batching,
        ..opts.session_options()
    };
    meter.trim()?;
    meter.reset_peak()?;
    sampler.reset_peak();
    let mut session = Session::open(model, frames_dir, device, session_opts)?;
    for (k, m) in masks.iter().enumerate() {
        let id = k as u32 + 1;
        match spec.prompt {
            SweepPrompt::Mask => {
                session.add_mask(0, id, m)?;
            }
            SweepPrompt::Point => {
                let (x, y) = interior_point(m)
                    .ok_or_else(|| Error::Other(format!("object {id}: empty prompt mask")))?;
                let prompt = Prompt {
                    points: vec![(x as f32, y as f32, 1)],
                    bbox: None,
                };
                session.add_prompt(0, id, &prompt)?;
            }
        }
    }
    device.synchronize()?;
    let mut times: Vec<f64> = Vec::new();
    let mut last: Option<Instant> = None;
    session.propagate(Some(0), None, false, |res| {
        // every object's mask on the host, as a caller would use it (and as the PyTorch side
        // of tests/gpu/objects_vs_torch.sh does)
        let _on_host = res.video_res_masks.gt(0f64)?.to_device(&Device::Cpu)?;
        device.synchronize()?;
        let now = Instant::now();
        if let Some(prev) = last {
            times.push(now.duration_since(prev).as_secs_f64() * 1e3);
        }
        last = Some(now);
        Ok(())
    })?;
    let steady = &times[opts.warmup_frames.min(times.len())..];
    let (mean, p50) = frame_stats(steady);
    row.timed_frames = steady.len();
    row.frame_ms_mean = mean;
    row.frame_ms_p50 = p50;
    row.fps = mean.filter(|m| *m > 0.0).map(|m| 1000.0 / m);
    row.object_fps = row.fps.map(|f| f * masks.len() as f64);
    let peaks = meter.peaks()?;
    row.gpu_peak_alloc_MiB = peaks.peak_alloc_bytes.map(to_mib);
    row.gpu_peak_reserved_MiB = peaks.peak_reserved_bytes.map(to_mib);
    row.cpu_peak_rss_MiB = Some(to_mib(sampler.peak_rss_bytes()));
    row.image_encoder_passes = session.image_encoder_passes();
    Ok(())
}

/// Run the sweep: every model of `opts`, every count of `spec`, batched then looped. A session
/// that fails (e.g. out of device memory at a large N) is recorded as an `error` row and the
/// sweep goes on; bad input stops it before anything is measured.
pub fn run_sweep(
    opts: &BenchOptions,
    spec: &SweepSpec,
    device: &Device,
    switches: &EnvSwitches,
) -> Result<Vec<SweepRow>> {
    spec.check(opts.warmup_frames)?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io(&opts.out_dir, e))?;
    let dtype = opts.precision.dtype();
    let conv = conv_options(opts, device, false);
    tuning::set_candle_matmul_tf32(conv.tf32);
    let model_opts = ModelOptions::new(
        std::sync::Arc::new(ConvTuner::new(conv)),
        switches.fused_attention,
    );
    let meter = DeviceMeter::new(device);
    let sampler = HostSampler::start(Duration::from_millis(5));
    // One model per variant: the sweep chooses its own prompts.
    let mut variants: Vec<&ModelTag> = Vec::new();
    for t in &opts.models {
        if !variants.iter().any(|v| v.config.name == t.config.name) {
            variants.push(t);
        }
    }
    let mut rows: Vec<SweepRow> = Vec::new();
    for tag in variants {
        let cfg = &tag.config;
        let weights = crate::bench::setup::resolve_weights(opts, tag)?;
        let model = build_model(cfg, &weights, dtype, device, &model_opts)?;
        let side = cfg.image_size;
        for &n in spec.counts.counts() {
            let (frames_dir, ann_dir) = sweep_video(spec, side, n, opts.seed)?;
            let masks = frame0_masks(&ann_dir, side, n)?;
            write_prompt_masks(&prompts_dir(spec, side, n), &masks)?;
            for batching in [ObjectBatching::Batched, ObjectBatching::Looped] {
                let mut row = SweepRow {
                    model: cfg.name.clone(),
                    weights: weights.label(),
                    device: opts.device.clone(),
                    precision: opts.precision.to_string(),
                    image_size: side,
                    objects: n,
                    batching: batching.to_string(),
                    prompt: spec.prompt.as_str().into(),
                    frames: spec.frames,
                    warmup_frames: opts.warmup_frames,
                    status: "ok".into(),
                    ..Default::default()
                };
                if let Err(e) = measure(
                    &model,
                    &frames_dir,
                    &masks,
                    batching,
                    opts,
                    spec,
                    device,
                    &meter,
                    &sampler,
                    &mut row,
                ) {
                    if matches!(e, Error::Input(_)) {
                        return Err(e);
                    }
                    row.status = "error".into();
                    row.error = e.to_string();
                }
                if !opts.quiet {
                    eprintln!(
                        "{} {} objects {}: {}",
                        row.model,
                        n,
                        row.batching,
                        match (row.frame_ms_mean, row.fps) {
                            (Some(ms), Some(fps)) => format!("{ms:.1} ms/frame, {fps:.2} FPS"),
                            _ => format!("error: {}", row.error),
                        }
                    );
                }
                rows.push(row);
                write_sweep(&opts.out_dir, spec, &rows)?;
            }
        }
    }
    sampler.stop();
    Ok(rows)
}

/// Whether a weights label says random weights.
pub fn is_random(weights: &str) -> bool {
    weights.starts_with("random")
}
