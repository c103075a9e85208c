//! The launcher's Jetson capture (docs/jetson.md): on a Jetson (detected from files under the
//! host root, never through CUDA) the board's environment goes into `summary.json`'s `jetson`
//! object, and while each inference process runs the machine is sampled into
//! `<out-dir>/jetson_samples.csv` (`tegrastats` when it is found, else `/proc/meminfo` and the
//! sysfs GPU load), one summary per process: per model with `--isolate-models`, else for the
//! whole phase.

use crate::bench::mem::DeviceInfo;
use crate::error::{Error, Result};
use crate::host::jetson::{detect, find_tegrastats, JetsonInfo, JetsonSampler, SampleSummary};
use crate::host::HostRoot;
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The samples file, in the run's out-dir.
pub const SAMPLES_CSV: &str = "jetson_samples.csv";

/// `--sample-interval-ms`: the accepted range and the default.
pub const SAMPLE_INTERVAL_MS_MIN: u64 = 10;
pub const SAMPLE_INTERVAL_MS_MAX: u64 = 600_000;
pub const SAMPLE_INTERVAL_MS_DEFAULT: u64 = 500;

/// Check `--sample-interval-ms`.
pub fn sample_interval(ms: u64) -> Result<Duration> {
    if !(SAMPLE_INTERVAL_MS_MIN..=SAMPLE_INTERVAL_MS_MAX).contains(&ms) {
        return Err(Error::Input(format!(
            "--sample-interval-ms {ms} is out of range: give {SAMPLE_INTERVAL_MS_MIN} to {SAMPLE_INTERVAL_MS_MAX}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// What one sampled process saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSamples {
    /// The `phase` column of its rows: `inference`, or `inference/<model>`.
    pub phase: String,
    /// The model of an `--isolate-models` process (None: the process ran every model).
    pub model: Option<String>,
    #[serde(flatten)]
    pub summary: SampleSummary,
}

/// `summary.json`'s `jetson` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JetsonCapture {
    #[serde(flatten)]
    pub info: JetsonInfo,
    /// The CUDA version the loaded driver supports and the cuDNN the binary loaded, from
    /// setup's device probe (None on the CPU, and cuDNN in cudnn builds only).
    pub driver_cuda_version: Option<String>,
    pub cudnn_version: Option<String>,
    /// The samples file in the out-dir (None when nothing was sampled, e.g. `--devices`).
    pub samples_csv: Option<String>,
    pub sample_interval_ms: u64,
    /// The `tegrastats` program found (None: the procfs fallback).
    pub tegrastats: Option<PathBuf>,
    /// One entry per sampled inference process, in order.
    pub sampling: Vec<ProcessSamples>,
}

/// The launcher's sampling of phase B on a Jetson.
pub struct PhaseSampling {
    root: HostRoot,
    info: JetsonInfo,
    tegrastats: Option<PathBuf>,
    interval: Duration,
    csv: PathBuf,
    runs: Vec<ProcessSamples>,
}

impl PhaseSampling {
    /// None off Jetson. `path`: the `PATH` setting `tegrastats` is looked for in (under the root,
    /// then on the real system). Nothing is written yet.
    pub fn new(
        root: &HostRoot,
        path: Option<&OsStr>,
        interval: Duration,
        out_dir: &Path,
    ) -> Option<PhaseSampling> {
        let info = detect(root.path())?;
        Some(PhaseSampling {
            root: root.clone(),
            info,
            tegrastats: find_tegrastats(root.path(), path),
            interval,
            csv: out_dir.join(SAMPLES_CSV),
            runs: Vec::new(),
        })
    }

    /// Where the samples go.
    pub fn csv(&self) -> &Path {
        &self.csv
    }

    /// `tegrastats`, or None for the procfs fallback.
    pub fn tegrastats(&self) -> Option<&Path> {
        self.tegrastats.as_deref()
    }

    /// Sample the machine while `run` runs (an inference process of `model`, or of every model);
    /// the first call of a run replaces a samples file an earlier run left.
    pub fn sample<T>(&mut self, model: Option<&str>, run: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.runs.is_empty() {
            if let Some(dir) = self.csv.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            match std::fs::remove_file(&self.csv) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&self.csv, e)),
            }
        }
        let phase = match model {
            Some(m) => format!("inference/{m}"),
            None => "inference".to_string(),
        };
        let sampler = JetsonSampler::start(
            self.root.path(),
            self.tegrastats.as_deref(),
            self.interval,
            &self.csv,
            &phase,
        )?;
        let out = run();
        let summary = sampler.stop();
        self.runs.push(ProcessSamples {
            phase,
            model: model.map(str::to_string),
            summary,
        });
        out
    }

    /// The `jetson` object of `summary.json`, with the versions setup's probe found on `device`.
    pub fn capture(&self, device: &DeviceInfo) -> JetsonCapture {
        JetsonCapture {
            info: self.info.clone(),
            driver_cuda_version: device.driver_cuda_version.clone(),
            cudnn_version: device.cudnn_version.clone(),
            samples_csv: (!self.runs.is_empty()).then(|| SAMPLES_CSV.to_string()),
            sample_interval_ms: self.interval.as_millis() as u64,
            tegrastats: self.tegrastats.clone(),
            sampling: self.runs.clone(),
        }
    }
}
