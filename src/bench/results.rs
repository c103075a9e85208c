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
    /// `one` (a session per object: the timing columns are this object's) or `all` (a session per
    /// video with all its objects: the timing and memory columns are the session's, the same on
    /// every row of the video).
    #[serde(default)]
    pub session_mode: String,
    /// Objects tracked in the session this row comes from.
    #[serde(default)]
    pub session_objects: Option<usize>,
    /// Frames per second of the session (all its objects together), the per-video FPS.
    #[serde(default)]
    pub session_fps: Option<f64>,
    /// Object-frames per second of the session: each tracked frame counts once per object with
    /// an output there (throughput over objects).
    #[serde(default)]
    pub object_frames_per_s: Option<f64>,
    /// Frame rate of the clip fed to the model: 24 / input_frame_stride.
    #[serde(default)]
    pub input_fps: Option<f64>,
    /// `--input-frame-stride`: every Nth frame from the prompt frame was fed (1 when the cell is
    /// missing or empty).
    #[serde(default = "one", deserialize_with = "stride_or_one")]
    pub input_frame_stride: usize,
    /// `--annotation-stride-frames` (0: off, also for a missing or empty cell).
    #[serde(default, deserialize_with = "count_or_zero")]
    pub annotation_stride_frames: usize,
    /// The original harness's column name for J&F; here it holds the official J&F (the same
    /// value as `JandF`), not the proxy the original computed.
    #[serde(default)]
    pub JandF_proxy: Option<f64>,
}

fn one() -> usize {
    1
}

fn stride_or_one<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or(1))
}

fn count_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or(0))
}

/// Columns of the oldest schema this version still reads: everything up to `error`. Later
/// columns are appended and default when an older CSV lacks them; the file is rewritten with
/// every column on the next row.
const OLDEST_SCHEMA_COLUMNS: usize = 36;

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

/// Rows of an existing CSV (none when the file does not exist). A CSV of an earlier vosbench
/// version (the current columns without some appended at the end) is read with the missing
/// columns at their defaults. A file with another header is an error rather than being
/// overwritten: it is someone else's results.
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
    let current = columns();
    let earlier_version = header.len() >= OLDEST_SCHEMA_COLUMNS && current.starts_with(&header);
    if !earlier_version {
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

/// Write `rows` to `path` atomically (a temp file in the same folder, synced, then renamed). On
/// failure (a full disk) the temp file is removed and the previous file is left as it was.
pub fn write_rows(path: &Path, rows: &[Row]) -> Result<()> {
    // a temp name of this process: two processes writing the same file never share a temp file;
    // those of killed processes go
    crate::host::disk::remove_dead_temps_of(path);
    let tmp = path.with_extension(format!("csv.tmp{}", std::process::id()));
    let res = write_rows_to(path, &tmp, rows);
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// A CSV writer's error: a file-system failure (a full disk) stays an I/O error on `tmp`.
fn csv_error(tmp: &Path, e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(tmp, io),
        other => Error::Other(format!("{}: {other:?}", tmp.display())),
    }
}

fn write_rows_to(path: &Path, tmp: &Path, rows: &[Row]) -> Result<()> {
    let tmp = tmp.to_path_buf();
    {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
        if rows.is_empty() {
            w.write_record(columns()).map_err(|e| csv_error(&tmp, e))?;
        }
        for r in rows {
            w.serialize(r).map_err(|e| csv_error(&tmp, e))?;
        }
        let buf = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
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
    /// The first `error` row of the model, as `<video> <object>: <error>`.
    pub first_error: Option<String>,
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
                first_error: rs
                    .iter()
                    .find(|r| r.status == RowStatus::Error)
                    .map(|r| format!("{} {}: {}", r.video, r.object, r.error)),
            }
        })
        .collect()
}

/// The terminal table of [`summarize`]: per model the row counts by status (`ok`, `over` the
/// budget, `err`), the speed, memory and accuracy figures, and under the table the first error
/// of every model that had one.
pub fn format_table(s: &[ModelSummary]) -> String {
    let f = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{:<34} {:>4} {:>4} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}\n",
        "model",
        "ok",
        "over",
        "err",
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
            "{:<34} {:>4} {:>4} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}\n",
            m.model,
            m.rows_ok,
            m.rows_budget_exceeded,
            m.rows_error,
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
    for m in s {
        if let Some(e) = &m.first_error {
            out.push_str(&format!(
                "{}: {} error row{}, first: {e}\n",
                m.model,
                m.rows_error,
                if m.rows_error == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

/// The run's outcome from its rows: `Ok` when no row ended in `error` (`budget_exceeded` is a
/// measurement, not a failure), else an error (exit code 1) counting them and naming the first.
pub fn check_rows(rows: &[Row]) -> Result<()> {
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == RowStatus::Error)
        .collect();
    match failed.first() {
        None => Ok(()),
        Some(r) => Err(Error::Other(format!(
            "{} of {} rows ended in error (first: {} {} {}: {}); rerun the same command to retry them",
            failed.len(),
            rows.len(),
            r.video,
            r.object,
            r.model,
            r.error
        ))),
    }
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
    fn a_csv_of_the_previous_version_resumes_and_is_upgraded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(CSV_NAME);
        let row = Row {
            video: "v".into(),
            object: "000".into(),
            model: "m".into(),
            JandF: Some(0.5),
            input_fps: Some(24.0),
            input_frame_stride: 1,
            JandF_proxy: Some(0.5),
            ..Row::default()
        };
        write_rows(&p, std::slice::from_ref(&row)).unwrap();
        // The same file as the previous version wrote it: the columns up to `error`.
        let text = std::fs::read_to_string(&p).unwrap();
        let old: String = text
            .lines()
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                cells[..OLDEST_SCHEMA_COLUMNS].join(",") + "\n"
            })
            .collect();
        assert!(old.starts_with("video,") && old.lines().next().unwrap().ends_with(",error"));
        std::fs::write(&p, &old).unwrap();
        let back = Results::resume(&p).unwrap();
        assert_eq!(back.rows().len(), 1);
        let r = &back.rows()[0];
        assert_eq!(r.JandF, Some(0.5));
        assert_eq!(
            (
                r.input_fps,
                r.input_frame_stride,
                r.annotation_stride_frames,
                r.JandF_proxy
            ),
            (None, 1, 0, None),
            "appended columns take their defaults"
        );
        write_rows(&p, back.rows()).unwrap();
        let header = std::fs::read_to_string(&p).unwrap();
        assert_eq!(header.lines().next().unwrap(), columns().join(","));
        // A header cut shorter than the oldest schema, or reordered, is not ours.
        let short: String = old
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
            .collect();
        std::fs::write(&p, short).unwrap();
        assert!(read_rows(&p).is_err());
        std::fs::write(&p, old.replacen("video,object", "object,video", 1)).unwrap();
        assert!(read_rows(&p).is_err());
    }

    #[test]
    fn a_csv_without_the_appended_columns_still_resumes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(CSV_NAME);
        let row = Row {
            video: "v".into(),
            object: "001".into(),
            model: "m_points".into(),
            session_mode: "one".into(),
            session_objects: Some(1),
            session_fps: Some(3.0),
            object_frames_per_s: Some(3.0),
            ..Row::default()
        };
        write_rows(&p, std::slice::from_ref(&row)).unwrap();
        // drop the columns this version appended after `error`
        let cols = columns();
        let keep = cols.iter().position(|c| c == "error").unwrap() + 1;
        let text = std::fs::read_to_string(&p).unwrap();
        let old: String = text
            .lines()
            .map(|l| l.split(',').take(keep).collect::<Vec<_>>().join(",") + "\n")
            .collect();
        std::fs::write(&p, old).unwrap();
        let back = read_rows(&p).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].key(), row.key());
        assert_eq!(back[0].session_objects, None);
        assert_eq!(back[0].session_mode, "");
        let res = Results::resume(&p).unwrap();
        assert!(res.is_done("v", "001", "m_points"));
        // a header that is not a start of this version's is still refused
        std::fs::write(&p, "video,model\nv,m\n").unwrap();
        assert!(read_rows(&p).is_err());
    }

    #[test]
    fn error_rows_fail_the_run_and_show_in_the_table() {
        let row = |video: &str, status, error: &str| Row {
            video: video.into(),
            object: "000".into(),
            model: "m_points".into(),
            status,
            error: error.into(),
            ..Row::default()
        };
        let ok = [
            row("a", RowStatus::Ok, ""),
            row("b", RowStatus::BudgetExceeded, "over"),
        ];
        assert!(check_rows(&ok).is_ok(), "budget_exceeded is not a failure");
        let table = format_table(&summarize(&ok));
        assert!(table.lines().next().unwrap().contains(" err "), "{table}");
        assert_eq!(table.lines().count(), 2, "no error line: {table}");
        let mut rows = ok.to_vec();
        rows.push(row("c", RowStatus::Error, "truncated cache"));
        rows.push(row("d", RowStatus::Error, "later"));
        let e = check_rows(&rows).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .starts_with("2 of 4 rows ended in error (first: c 000 m_points: truncated cache)"),
            "{e}"
        );
        let table = format_table(&summarize(&rows));
        let line = table.lines().nth(1).unwrap();
        let counts: Vec<&str> = line.split_whitespace().skip(1).take(3).collect();
        assert_eq!(counts, ["1", "1", "2"], "{table}");
        assert!(
            table.contains("m_points: 2 error rows, first: c 000: truncated cache"),
            "{table}"
        );
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
