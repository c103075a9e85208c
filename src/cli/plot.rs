//! `vosbench plot`: the per-model summary of a `vosbench_summary.csv`, drawn as SVG.
//!
//! The summary is the benchmark's own ([`crate::bench::results::summarize`]): the numbers of the
//! table `vosbench bench` prints and of `summary.json`, so the figures and the table agree. Rows
//! whose `status` is not `ok` are counted and left out; an empty cell is never a zero. Two
//! figures: FPS against J&F (one point per model: filled for `fps`, frames over tracking time
//! across the model's rows; hollow for the mean `fps_steady`) and peak memory per model (grouped
//! bars: GPU peak allocated, GPU peak reserved, process peak RSS, system peak used: the largest
//! over the model's rows, in MiB). The numbers behind them are also written as `plot_means.csv`.
//! Only SVG is written: rasterising text without a system font stack is not cheap in pure Rust.

use crate::bench::results::{read_rows, summarize, ModelSummary, Row};
use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The benchmark summary CSV (vosbench_summary.csv).
    pub csv: PathBuf,
    /// Output folder (default: the CSV's folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A per-model figure of the summary.
type Figure = fn(&ModelSummary) -> Option<f64>;

/// The columns of `plot_means.csv` after `model,rows`, with the summary figure each holds.
pub const METRICS: [(&str, Figure); 7] = [
    ("fps", |m| m.fps),
    ("fps_steady", |m| m.fps_steady_mean),
    ("JandF", |m| m.JandF_mean),
    ("gpu_peak_alloc_MiB", |m| m.gpu_peak_alloc_MiB_max),
    ("gpu_peak_reserved_MiB", |m| m.gpu_peak_reserved_MiB_max),
    ("cpu_peak_rss_MiB", |m| m.cpu_peak_rss_MiB_max),
    ("system_peak_MiB", |m| m.system_peak_MiB_max),
];

/// The memory bars: CSS class (the CSV column), legend label, figure.
const MEMORY: [(&str, &str, Figure); 4] = [
    ("gpu_peak_alloc_MiB", "GPU peak allocated", |m| {
        m.gpu_peak_alloc_MiB_max
    }),
    ("gpu_peak_reserved_MiB", "GPU peak reserved", |m| {
        m.gpu_peak_reserved_MiB_max
    }),
    ("cpu_peak_rss_MiB", "process peak RSS", |m| {
        m.cpu_peak_rss_MiB_max
    }),
    ("system_peak_MiB", "system peak used", |m| {
        m.system_peak_MiB_max
    }),
];

const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// What a summary CSV held.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Data rows read.
    pub rows: usize,
    /// Rows left out as `budget_exceeded` and as `error`.
    pub rows_budget_exceeded: usize,
    pub rows_error: usize,
    /// The models with at least one `ok` row, in the table's order (by name).
    pub models: Vec<ModelSummary>,
}

impl Summary {
    pub fn skipped_total(&self) -> usize {
        self.rows_budget_exceeded + self.rows_error
    }

    pub fn rows_ok(&self) -> usize {
        self.models.iter().map(|m| m.rows_ok).sum()
    }
}

/// The summary of benchmark rows.
pub fn summary_of(rows: &[Row]) -> Summary {
    let all = summarize(rows);
    Summary {
        rows: rows.len(),
        rows_budget_exceeded: all.iter().map(|m| m.rows_budget_exceeded).sum(),
        rows_error: all.iter().map(|m| m.rows_error).sum(),
        models: all.into_iter().filter(|m| m.rows_ok > 0).collect(),
    }
}

/// Read a benchmark CSV (the columns this version writes) and summarise it.
pub fn read_summary(path: &Path) -> Result<Summary> {
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    Ok(summary_of(&read_rows(path)?))
}

/// Axis ticks at 1, 2 or 5 times a power of ten covering `[lo, hi]`; returns the rounded range
/// and the ticks.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>) {
    let (mut lo, mut hi) = (lo.min(hi), lo.max(hi));
    if (hi - lo).abs() < 1e-12 {
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.1 } else { 1.0 };
        lo -= pad;
        hi += pad;
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let n = ((end - start) / step).round() as usize;
    let ticks = (0..=n).map(|i| start + i as f64 * step).collect();
    (start, end, ticks)
}

fn fmt_tick(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 760.0;
const H: f64 = 480.0;
const ML: f64 = 80.0;
const MR: f64 = 200.0;
const MT: f64 = 50.0;
const MB: f64 = 70.0;

fn svg_open(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        (ML + W - MR) / 2.0,
        esc(title)
    );
    s
}

/// Draw the y axis (with grid) and the plot frame; returns the y mapping.
fn y_axis(s: &mut String, lo: f64, hi: f64, ticks: &[f64], label: &str) -> impl Fn(f64) -> f64 {
    let (top, bottom) = (MT, H - MB);
    let map = move |v: f64| bottom - (v - lo) / (hi - lo) * (bottom - top);
    for &t in ticks {
        let y = map(t);
        let _ = writeln!(
            s,
            "<line x1=\"{ML}\" y1=\"{y:.2}\" x2=\"{}\" y2=\"{y:.2}\" stroke=\"#e0e0e0\"/>",
            W - MR
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.2}" text-anchor="end">{}</text>"#,
            ML - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{ML}" y="{MT}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        W - MR - ML,
        H - MB - MT
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="{0}" text-anchor="middle" transform="rotate(-90 20 {0})">{1}</text>"#,
        (MT + H - MB) / 2.0,
        esc(label)
    );
    map
}

/// FPS against J&F, one point per model with both figures; `None` when no model has both.
pub fn scatter_svg(summary: &Summary) -> Option<String> {
    let pts: Vec<(usize, &ModelSummary, f64, f64, Option<f64>)> = summary
        .models
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m, m.JandF_mean?, m.fps?, m.fps_steady_mean)))
        .collect();
    if pts.is_empty() {
        return None;
    }
    let xs = pts.iter().map(|p| p.2);
    let ys = pts.iter().flat_map(|p| std::iter::once(p.3).chain(p.4));
    let (xlo, xhi) = xs.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (ylo, yhi) = ys.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (xlo, xhi, xt) = nice_ticks(xlo, xhi, 6);
    let (ylo, yhi, yt) = nice_ticks(ylo.min(0.0), yhi, 6);
    let mut s = svg_open("Speed against accuracy (per model)");
    let ymap = y_axis(&mut s, ylo, yhi, &yt, "frames per second");
    let xmap = |v: f64| ML + (v - xlo) / (xhi - xlo) * (W - MR - ML);
    for &t in &xt {
        let x = xmap(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.2}\" y1=\"{MT}\" x2=\"{x:.2}\" y2=\"{}\" stroke=\"#e0e0e0\"/>",
            H - MB
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"#,
            H - MB + 18.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">J&amp;F</text>"#,
        (ML + W - MR) / 2.0,
        H - 25.0
    );
    for (k, (i, m, x, fps, steady)) in pts.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let (px, py) = (xmap(*x), ymap(*fps));
        let _ = writeln!(
            s,
            r#"<circle class="fps" cx="{px:.2}" cy="{py:.2}" r="6" fill="{c}"><title>{}: J&amp;F {x:.2}, {fps:.2} FPS</title></circle>"#,
            esc(&m.model)
        );
        if let Some(st) = steady {
            let _ = writeln!(
                s,
                r#"<circle class="fps_steady" cx="{px:.2}" cy="{:.2}" r="6" fill="none" stroke="{c}" stroke-width="2"><title>{}: {st:.2} steady FPS</title></circle>"#,
                ymap(*st),
                esc(&m.model)
            );
        }
        let ly = MT + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<circle cx="{}" cy="{ly}" r="6" fill="{c}"/><text x="{}" y="{}">{}</text>"#,
            W - MR + 20.0,
            W - MR + 32.0,
            ly + 4.0,
            esc(&m.model)
        );
    }
    let ly = MT + 10.0 + 20.0 * pts.len() as f64 + 10.0;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{ly}" font-size="11">filled: fps, hollow: fps_steady</text>"#,
        W - MR + 14.0
    );
    s.push_str("</svg>\n");
    Some(s)
}

/// Peak memory per model as grouped bars (MiB); `None` when no model has any memory figure.
pub fn memory_svg(summary: &Summary) -> Option<String> {
    let models: Vec<&ModelSummary> = summary
        .models
        .iter()
        .filter(|m| MEMORY.iter().any(|(_, _, f)| f(m).is_some()))
        .collect();
    if models.is_empty() {
        return None;
    }
    let series: Vec<usize> = (0..MEMORY.len())
        .filter(|&k| models.iter().any(|m| MEMORY[k].2(m).is_some()))
        .collect();
    let max = models
        .iter()
        .flat_map(|m| series.iter().filter_map(|&k| MEMORY[k].2(m)))
        .fold(0.0f64, f64::max);
    let (_, yhi, yt) = nice_ticks(0.0, max, 6);
    let mut s = svg_open("Peak memory per model (largest over its rows)");
    let ymap = y_axis(&mut s, 0.0, yhi, &yt, "MiB");
    let group_w = (W - MR - ML) / models.len() as f64;
    let bar_w = group_w * 0.8 / series.len() as f64;
    for (g, m) in models.iter().enumerate() {
        let gx = ML + g as f64 * group_w + group_w * 0.1;
        for (j, &k) in series.iter().enumerate() {
            let Some(v) = MEMORY[k].2(m) else {
                continue;
            };
            let (y, y0) = (ymap(v), ymap(0.0));
            let _ = writeln!(
                s,
                r#"<rect class="{}" x="{:.2}" y="{y:.2}" width="{bar_w:.2}" height="{:.2}" fill="{}"><title>{}: {} {v:.1} MiB</title></rect>"#,
                MEMORY[k].0,
                gx + j as f64 * bar_w,
                y0 - y,
                COLORS[k],
                esc(&m.model),
                MEMORY[k].1
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{}" text-anchor="middle">{}</text>"#,
            ML + (g as f64 + 0.5) * group_w,
            H - MB + 18.0,
            esc(&m.model)
        );
    }
    for (j, &k) in series.iter().enumerate() {
        let ly = MT + 10.0 + 20.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            W - MR + 14.0,
            ly - 6.0,
            COLORS[k],
            W - MR + 32.0,
            ly + 4.0,
            MEMORY[k].1
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The figures behind the plots as CSV, one line per model: `model`, its `ok` rows, then
/// [`METRICS`] (empty field where a model has no value).
pub fn means_csv(summary: &Summary) -> String {
    let names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
    let mut s = format!("model,rows,{}\n", names.join(","));
    for m in &summary.models {
        let _ = write!(s, "{},{}", csv_field(&m.model), m.rows_ok);
        for (_, figure) in &METRICS {
            match figure(m) {
                Some(v) => {
                    let _ = write!(s, ",{v:.4}");
                }
                None => s.push(','),
            }
        }
        s.push('\n');
    }
    s
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

pub fn run(args: Args) -> Result<()> {
    let summary = read_summary(&args.csv)?;
    let out = match &args.out {
        Some(d) => d.clone(),
        None => args
            .csv
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    println!(
        "{} rows, {} ok over {} models",
        summary.rows,
        summary.rows_ok(),
        summary.models.len()
    );
    if summary.skipped_total() > 0 {
        let detail: Vec<String> = [
            (summary.rows_budget_exceeded, "budget_exceeded"),
            (summary.rows_error, "error"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
        println!(
            "skipped {} rows whose status is not ok ({})",
            summary.skipped_total(),
            detail.join(", ")
        );
    }
    if summary.models.is_empty() {
        return Err(Error::Input(format!(
            "{}: no row with status ok, nothing to plot",
            args.csv.display()
        )));
    }
    let means = out.join("plot_means.csv");
    write(&means, &means_csv(&summary))?;
    println!("wrote {}", means.display());
    match scatter_svg(&summary) {
        Some(svg) => {
            let p = out.join("fps_vs_jandf.svg");
            write(&p, &svg)?;
            println!("wrote {}", p.display());
        }
        None => println!("no model has both fps and JandF: FPS-vs-J&F plot not drawn"),
    }
    match memory_svg(&summary) {
        Some(svg) => {
            let p = out.join("memory.svg");
            write(&p, &svg)?;
            println!("wrote {}", p.display());
        }
        None => println!("no memory columns with values: memory plot not drawn"),
    }
    Ok(())
}
