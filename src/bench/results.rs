//! The benchmark's results: one [`Row`] per (video, object, model), the summary CSV (rewritten
//! atomically: temp file + rename), resume from an existing CSV, percentiles and the per-model
//! summary.

use crate::config::Precision;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The CSV file name inside `--out-dir`.
pub const CSV_NAME: &str = "vosbench_summary.csv";

/// How a row ended. Only `error` rows are run again on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    #[default]
    Ok,
    /// Predicted at setup, or measured during tracking, over the memory budget.
    BudgetExceeded,
    /// Failed; the `error` column says why.
    Error,
}

/// One row of `vosbench_summary.csv`. Field order is the column order; units are in the names
/// (docs/benchmark.md describes every column).
#[allow(non_snake_case)]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub video: String,
    pub object: String,
    pub model: String,
    pub imgsz: usize,
    pub precision: Precision,
    pub prompt: String,
    pub prompt_frame: usize,
    /// clip_end - prompt_frame: frames tracked (the prompt frame included)
    pub frames: usize,
    pub processed_end_frame: usize,
    pub scored_frames: usize,
    pub fps: Option<f64>,
    pub fps_steady: Option<f64>,
    pub latency_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub gpu_peak_alloc_MiB: Option<f64>,
    pub gpu_peak_reserved_MiB: Option<f64>,
    pub cpu_peak_rss_MiB: Option<f64>,
    pub system_peak_MiB: Option<f64>,
    pub mem_budget_MiB: Option<f64>,
    pub baseline_rss_MiB: Option<f64>,
    pub baseline_gpu_MiB: Option<f64>,
    pub J: Option<f64>,
    pub F: Option<f64>,
    pub JandF: Option<f64>,
    pub overlay: String,
    pub setup_ms: Option<f64>,
    pub input_H: usize,
    pub input_W: usize,
    pub infer_H: usize,
    pub infer_W: usize,
    pub cudnn_benchmark: bool,
    pub weights: String,
    pub status: RowStatus,
    pub error: String,
}

impl Row {
    pub fn key(&self) -> (String, String, String) {
        (self.video.clone(), self.object.clone(), self.model.clone())
    }

    /// Finished rows are kept and skipped on resume; `error` rows are retried.
    pub fn is_finished(&self) -> bool {
        matches!(self.status, RowStatus::Ok | RowStatus::BudgetExceeded)
    }
}

/// The column names, in order (the CSV header).
pub fn columns() -> Vec<String> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // the header serde writes for any row
    if w.serialize(Row::default()).is_err() {
        return Vec::new();
    }
    let bytes = w.into_inner().unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Rows of an existing CSV (none when the file does not exist). A file with another header is
/// an error rather than being overwritten: it is someone else's results.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    if header != columns() {
        return Err(Error::Input(format!(
            "{} has other columns than this version of vosbench writes",
            path.display()
        )));
    }
    let mut rows = Vec::new();
    for rec in r.deserialize::<Row>() {
        rows.push(rec.map_err(|e| Error::Input(format!("cannot parse {}: {e}", path.display())))?);
    }
    Ok(rows)
}

/// Write `rows` to `path` atomically (a temp file in the same folder, synced, then renamed).
pub fn write_rows(path: &Path, rows: &[Row]) -> Result<()> {
    let tmp = path.with_extension(format!("csv.tmp{}", std::process::id()));
    {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
        if rows.is_empty() {
            w.write_record(columns())
                .map_err(|e| Error::Other(format!("{}: {e}", tmp.display())))?;
        }
        for r in rows {
            w.serialize(r)
                .map_err(|e| Error::Other(format!("{}: {e}", tmp.display())))?;
        }
        let buf = w
            .into_inner()
            .map_err(|e| Error::Other(format!("{}: {e}", tmp.display())))?;
        let f = buf
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The results table being built: finished rows from an earlier run plus new ones, in the
/// order they were produced; a retried key replaces its old row.
#[derive(Debug, Default)]
pub struct Results {
    rows: Vec<Row>,
}

impl Results {
    /// Load the rows of an earlier run; `error` rows are dropped (they will be retried).
    pub fn resume(path: &Path) -> Result<Self> {
        let rows = read_rows(path)
            .map_err(|e| match e {
                Error::Input(m) => {
                    Error::Input(format!("{m}; move it away or use another --out-dir"))
                }
                other => other,
            })?
            .into_iter()
            .filter(Row::is_finished)
            .collect();
        Ok(Self { rows })
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn is_done(&self, video: &str, object: &str, model: &str) -> bool {
        self.rows
            .iter()
            .any(|r| r.video == video && r.object == object && r.model == model && r.is_finished())
    }

    pub fn push(&mut self, row: Row) {
        let k = row.key();
        self.rows.retain(|r| r.key() != k);
        self.rows.push(row);
    }
}

/// Round to `d` decimals (the CSV's fixed precision per column).
pub fn round(v: f64, d: i32) -> f64 {
    let p = 10f64.powi(d);
    (v * p).round() / p
}

pub fn mib(bytes: u64) -> f64 {
    round(bytes as f64 / 1048576.0, 1)
}

/// Percentile with linear interpolation between closest ranks (numpy's default).
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = (sorted.len() - 1) as f64 * q / 100.0;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Per-model aggregate over the `ok` rows.
#[allow(non_snake_case)]
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub model: String,
    pub rows_ok: usize,
    pub rows_budget_exceeded: usize,
    pub rows_error: usize,
    /// total frames / total tracking seconds over all ok rows
    pub fps: Option<f64>,
    pub fps_steady_mean: Option<f64>,
    pub latency_p50_ms_mean: Option<f64>,
    pub latency_p90_ms_mean: Option<f64>,
    pub latency_p99_ms_mean: Option<f64>,
    pub cpu_peak_rss_MiB_max: Option<f64>,
    pub gpu_peak_alloc_MiB_max: Option<f64>,
    pub gpu_peak_reserved_MiB_max: Option<f64>,
    pub system_peak_MiB_max: Option<f64>,
    pub J_mean: Option<f64>,
    pub F_mean: Option<f64>,
    pub JandF_mean: Option<f64>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

pub fn summarize(rows: &[Row]) -> Vec<ModelSummary> {
    let mut by: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by.entry(r.model.as_str()).or_default().push(r);
    }
    by.into_iter()
        .map(|(model, rs)| {
            let ok: Vec<&Row> = rs
                .iter()
                .copied()
                .filter(|r| r.status == RowStatus::Ok)
                .collect();
            let col = |f: &dyn Fn(&Row) -> Option<f64>| -> Vec<f64> {
                ok.iter().filter_map(|r| f(r)).collect()
            };
            let (mut frames, mut secs) = (0f64, 0f64);
            for r in &ok {
                if let (Some(lat), n) = (r.latency_ms, r.frames) {
                    frames += n as f64;
                    secs += lat * n as f64 / 1000.0;
                }
            }
            let r4 = |v: Option<f64>| v.map(|x| round(x, 4));
            let r1 = |v: Option<f64>| v.map(|x| round(x, 1));
            ModelSummary {
                model: model.to_string(),
                rows_ok: ok.len(),
                rows_budget_exceeded: rs
                    .iter()
                    .filter(|r| r.status == RowStatus::BudgetExceeded)
                    .count(),
                rows_error: rs.iter().filter(|r| r.status == RowStatus::Error).count(),
                fps: (secs > 0.0).then(|| round(frames / secs, 2)),
                fps_steady_mean: mean(&col(&|r| r.fps_steady)).map(|x| round(x, 2)),
                latency_p50_ms_mean: r1(mean(&col(&|r| r.latency_p50_ms))),
                latency_p90_ms_mean: r1(mean(&col(&|r| r.latency_p90_ms))),
                latency_p99_ms_mean: r1(mean(&col(&|r| r.latency_p99_ms))),
                cpu_peak_rss_MiB_max: max(&col(&|r| r.cpu_peak_rss_MiB)),
                gpu_peak_alloc_MiB_max: max(&col(&|r| r.gpu_peak_alloc_MiB)),
                gpu_peak_reserved_MiB_max: max(&col(&|r| r.gpu_peak_reserved_MiB)),
                system_peak_MiB_max: max(&col(&|r| r.system_peak_MiB)),
                J_mean: r4(mean(&col(&|r| r.J))),
                F_mean: r4(mean(&col(&|r| r.F))),
                JandF_mean: r4(mean(&col(&|r| r.JandF))),
            }
        })
        .collect()
}

/// The terminal table of [`summarize`].
pub fn format_table(s: &[ModelSummary]) -> String {
    let f = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{:<34} {:>4} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}\n",
        "model",
        "ok",
        "over",
        "fps",
        "steady",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "rss MiB",
        "gpu MiB",
        "J&F"
    );
    for m in s {
        out.push_str(&format!(
            "{:<34} {:>4} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}\n",
            m.model,
            m.rows_ok,
            m.rows_budget_exceeded,
            f(m.fps, 2),
            f(m.fps_steady_mean, 2),
            f(m.latency_p50_ms_mean, 1),
            f(m.latency_p90_ms_mean, 1),
            f(m.latency_p99_ms_mean, 1),
            f(m.cpu_peak_rss_MiB_max, 1),
            f(m.gpu_peak_alloc_MiB_max, 1),
            f(m.JandF_mean, 4),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), Some(2.5));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert!((percentile(&v, 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn csv_round_trip_and_resume() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(CSV_NAME);
        let cols = columns();
        assert_eq!(cols[0], "video");
        assert!(cols.contains(&"JandF".to_string()) && cols.contains(&"status".to_string()));
        write_rows(&p, &[]).unwrap();
        assert!(read_rows(&p).unwrap().is_empty());
        let mut res = Results::resume(&p).unwrap();
        let mut row: Row = csv::Reader::from_reader(
            format!("{}\n{}\n", cols.join(","), {
                let mut v = vec![String::new(); cols.len()];
                for (i, c) in cols.iter().enumerate() {
                    v[i] = match c.as_str() {
                        "video" => "v1".into(),
                        "object" => "000".into(),
                        "model" => "m".into(),
                        "cudnn_benchmark" => "false".into(),
                        "precision" => "f32".into(),
                        "status" => "ok".into(),
                        c if c.starts_with("input_") || c.starts_with("infer_") => "1".into(),
                        "imgsz"
                        | "prompt_frame"
                        | "frames"
                        | "processed_end_frame"
                        | "scored_frames" => "0".into(),
                        _ => String::new(),
                    };
                }
                v.join(",")
            })
            .as_bytes(),
        )
        .deserialize()
        .next()
        .unwrap()
        .unwrap();
        res.push(row.clone());
        row.object = "001".into();
        row.status = RowStatus::Error;
        res.push(row.clone());
        write_rows(&p, res.rows()).unwrap();
        assert_eq!(read_rows(&p).unwrap().len(), 2);
        let again = Results::resume(&p).unwrap();
        assert_eq!(again.rows().len(), 1, "error rows are retried");
        assert!(again.is_done("v1", "000", "m"));
        assert!(!again.is_done("v1", "001", "m"));
        std::fs::write(&p, "a,b\n1,2\n").unwrap();
        assert!(read_rows(&p).is_err());
    }

    #[test]
    fn statuses_keep_their_csv_strings_and_unknown_ones_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(CSV_NAME);
        let rows: Vec<Row> = [RowStatus::Ok, RowStatus::BudgetExceeded, RowStatus::Error]
            .into_iter()
            .enumerate()
            .map(|(i, status)| Row {
                video: format!("v{i}"),
                status,
                ..Row::default()
            })
            .collect();
        write_rows(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        for s in [",f32,", ",ok,", ",budget_exceeded,", ",error,"] {
            assert!(text.contains(s), "{s} not in {text}");
        }
        assert_eq!(read_rows(&p).unwrap(), rows);
        std::fs::write(&p, text.replace(",budget_exceeded,", ",oom,")).unwrap();
        let e = read_rows(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("oom"), "{e}");
    }
}
