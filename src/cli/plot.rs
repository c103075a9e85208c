//! `vosbench plot`: the figures of a benchmark CSV, drawn with `plotters` as SVG and PNG.
//!
//! The summary is the benchmark's own ([`crate::bench::results::summarize`]): the numbers of the
//! table `vosbench bench` prints and of `summary.json`, so the figures and the table agree. Rows
//! whose `status` is not `ok` are counted and left out; an empty cell is never a zero. Two
//! figures: FPS against J&F (one point per model: filled for `fps`, frames over tracking time
//! across the model's rows; hollow for the mean `fps_steady`) and peak memory per model (grouped
//! bars: GPU peak allocated, GPU peak reserved, process peak RSS, system peak used: the largest
//! over the model's rows, in MiB). The numbers behind them are also written as `plot_means.csv`.
//! A figure whose numbers come from random weights says so under its plot.
//!
//! The drawing ([`crate::cli::figure`]): `plotters`, PNG and SVG, DejaVu Sans embedded. In the SVG
//! every data mark carries a `class` (the CSV column it shows) and a `<title>` with its model and
//! value, so a browser shows the number on hover and a script can read the marks back. An
//! objects-sweep CSV is drawn by [`crate::cli::plot_sweep`].

use crate::bench::results::{read_rows, summarize, ModelSummary, Row};
use crate::bench::setup::plural;
use crate::cli::figure::{
    draw_err, emit, fmt_tick, frame, legend_entry, random_note, range, render_svg, write, Canvas,
    Mark, MarkShape, Marker, Plot, COLORS,
};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use crate::cli::figure::{nice_ticks, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The benchmark CSV: vosbench_summary.csv, or objects_sweep.csv of `bench --objects-sweep`.
    pub csv: PathBuf,
    /// Output folder (default: the CSV's folder), or one file ending in .svg or .png: then only
    /// the CSV's first figure is drawn, into that file (replaced if it exists).
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

/// The memory bars: SVG class (the CSV column), legend label, figure.
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
    /// The models whose `ok` rows ran with random weights (the `weights` column).
    pub random_weights: Vec<String>,
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
    let mut random_weights: Vec<String> = rows
        .iter()
        .filter(|r| r.status == crate::bench::RowStatus::Ok && r.weights.starts_with("random"))
        .map(|r| r.model.clone())
        .collect();
    random_weights.sort();
    random_weights.dedup();
    Summary {
        rows: rows.len(),
        rows_budget_exceeded: all.iter().map(|m| m.rows_budget_exceeded).sum(),
        rows_error: all.iter().map(|m| m.rows_error).sum(),
        models: all.into_iter().filter(|m| m.rows_ok > 0).collect(),
        random_weights,
    }
}

/// Read a benchmark CSV (the columns this version writes) and summarise it.
pub fn read_summary(path: &Path) -> Result<Summary> {
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    Ok(summary_of(&read_rows(path)?))
}

/// FPS against J&F, one point per model with both figures.
pub struct ScatterPlot<'s>(pub &'s Summary);

/// (model index, model, J&F, fps, fps_steady) of the models with both J&F and FPS.
type ScatterPoint<'s> = (usize, &'s ModelSummary, f64, f64, Option<f64>);

impl<'s> ScatterPlot<'s> {
    fn points(&self) -> Vec<ScatterPoint<'s>> {
        self.0
            .models
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, m, m.JandF_mean?, m.fps?, m.fps_steady_mean)))
            .collect()
    }
}

impl Plot for ScatterPlot<'_> {
    fn stem(&self) -> &'static str {
        "fps_vs_jandf"
    }

    fn draw<DB: DrawingBackend>(&self, c: &Canvas<'_, DB>) -> Result<Vec<Mark>> {
        let pts = self.points();
        let note = random_note(&self.0.random_weights);
        let (left, legend) = frame(c, "Speed against accuracy (per model)", note.as_deref())?;
        let xr = range(pts.iter().map(|p| p.2), false).unwrap_or(0.0..1.0);
        let yr = range(
            pts.iter().flat_map(|p| std::iter::once(p.3).chain(p.4)),
            true,
        )
        .unwrap_or(0.0..1.0);
        let mut chart = ChartBuilder::on(&left)
            .margin(c.px(12))
            .x_label_area_size(c.px(45))
            .y_label_area_size(c.px(65))
            .build_cartesian_2d(xr, yr)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("J&F")
            .y_desc("frames per second")
            .label_style(c.font(12))
            .axis_desc_style(c.font(14))
            .x_label_formatter(&|v| fmt_tick(*v))
            .y_label_formatter(&|v| fmt_tick(*v))
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_err)?;
        let r = c.px(6) as i32;
        let mut marks = Vec::new();
        for (k, (i, m, x, fps, steady)) in pts.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(std::iter::once(Circle::new((*x, *fps), r, color.filled())))
                .map_err(draw_err)?;
            let (cx, cy) = chart.backend_coord(&(*x, *fps));
            marks.push(Mark {
                shape: MarkShape::Circle { cx, cy, r },
                class: "fps".into(),
                title: format!("{}: J&F {x:.2}, {fps:.2} FPS", m.model),
            });
            if let Some(st) = steady {
                let style = color.stroke_width(c.px(2));
                chart
                    .draw_series(std::iter::once(Circle::new((*x, *st), r, style)))
                    .map_err(draw_err)?;
                let (cx, cy) = chart.backend_coord(&(*x, *st));
                marks.push(Mark {
                    shape: MarkShape::Circle { cx, cy, r },
                    class: "fps_steady".into(),
                    title: format!("{}: {st:.2} steady FPS", m.model),
                });
            }
            legend_entry(c, &legend, k as u32, &m.model, Marker::Dot(color))?;
        }
        legend
            .draw_text(
                "filled: fps, hollow: fps_steady",
                &c.font(11),
                (c.px(8) as i32, c.px(30 + 22 * pts.len() as u32 + 6) as i32),
            )
            .map_err(draw_err)?;
        Ok(marks)
    }
}

/// Peak memory per model as grouped bars (MiB).
pub struct MemoryPlot<'s>(pub &'s Summary);

impl MemoryPlot<'_> {
    fn models(&self) -> Vec<&ModelSummary> {
        self.0
            .models
            .iter()
            .filter(|m| MEMORY.iter().any(|(_, _, f)| f(m).is_some()))
            .collect()
    }
}

impl Plot for MemoryPlot<'_> {
    fn stem(&self) -> &'static str {
        "memory"
    }

    fn draw<DB: DrawingBackend>(&self, c: &Canvas<'_, DB>) -> Result<Vec<Mark>> {
        let models = self.models();
        let series: Vec<usize> = (0..MEMORY.len())
            .filter(|&k| models.iter().any(|m| MEMORY[k].2(m).is_some()))
            .collect();
        let max = models
            .iter()
            .flat_map(|m| series.iter().filter_map(|&k| MEMORY[k].2(m)))
            .fold(0.0f64, f64::max);
        let note = random_note(&self.0.random_weights);
        let (left, legend) = frame(
            c,
            "Peak memory per model (largest over its rows)",
            note.as_deref(),
        )?;
        let (_, yhi, _) = nice_ticks(0.0, max, 6);
        let n = models.len().max(1);
        let names: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
        let mut chart = ChartBuilder::on(&left)
            .margin(c.px(12))
            .x_label_area_size(c.px(45))
            .y_label_area_size(c.px(65))
            .build_cartesian_2d(0.0..n as f64, 0.0..yhi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| fmt_tick(*v))
            .y_desc("MiB")
            .label_style(c.font(12))
            .axis_desc_style(c.font(14))
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_err)?;
        let bar_w = 0.8 / series.len().max(1) as f64;
        let mut marks = Vec::new();
        for (g, m) in models.iter().enumerate() {
            for (j, &k) in series.iter().enumerate() {
                let Some(v) = MEMORY[k].2(m) else {
                    continue;
                };
                let x0 = g as f64 + 0.1 + j as f64 * bar_w;
                let x1 = x0 + bar_w;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, v), (x1, 0.0)],
                        COLORS[k].filled(),
                    )))
                    .map_err(draw_err)?;
                let (a, b) = (
                    chart.backend_coord(&(x0, v)),
                    chart.backend_coord(&(x1, 0.0)),
                );
                marks.push(Mark {
                    shape: MarkShape::Rect {
                        x0: a.0.min(b.0),
                        y0: a.1.min(b.1),
                        x1: a.0.max(b.0),
                        y1: a.1.max(b.1),
                    },
                    class: MEMORY[k].0.into(),
                    title: format!("{}: {} {v:.1} MiB", m.model, MEMORY[k].1),
                });
            }
        }
        for (row, &k) in series.iter().enumerate() {
            legend_entry(
                c,
                &legend,
                row as u32,
                MEMORY[k].1,
                Marker::Square(COLORS[k]),
            )?;
        }
        for (g, name) in names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            c.root
                .draw_text(
                    name,
                    &c.font(12).pos(Pos::new(HPos::Center, VPos::Top)),
                    (x, y + c.px(8) as i32),
                )
                .map_err(draw_err)?;
        }
        Ok(marks)
    }
}

/// FPS against J&F as SVG, one point per model with both figures; `None` when no model has
/// both.
///
/// # Panics
/// Only on a drawing failure, which is a bug (the figure is drawn into memory with the embedded
/// font); `vosbench plot` returns such a failure as an error instead.
pub fn scatter_svg(summary: &Summary) -> Option<String> {
    let plot = ScatterPlot(summary);
    (!plot.points().is_empty())
        .then(|| render_svg(&plot).unwrap_or_else(|e| panic!("drawing the FPS-vs-J&F figure: {e}")))
}

/// Peak memory per model as SVG grouped bars (MiB); `None` when no model has any memory figure.
///
/// # Panics
/// As [`scatter_svg`].
pub fn memory_svg(summary: &Summary) -> Option<String> {
    let plot = MemoryPlot(summary);
    (!plot.models().is_empty())
        .then(|| render_svg(&plot).unwrap_or_else(|e| panic!("drawing the memory figure: {e}")))
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

/// Whether a CSV is an objects sweep (`bench --objects-sweep`) rather than a benchmark CSV.
fn is_objects_sweep(path: &Path) -> Result<bool> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    let header = r
        .headers()
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok(header.iter().any(|h| h == "objects") && header.iter().any(|h| h == "batching"))
}

pub fn run(args: Args) -> Result<()> {
    std::fs::metadata(&args.csv).map_err(|e| Error::io(&args.csv, e))?;
    let target = Target::of(args.out.as_deref(), &args.csv);
    if is_objects_sweep(&args.csv)? {
        return crate::cli::plot_sweep::run(&args.csv, &target);
    }
    let summary = read_summary(&args.csv)?;
    println!(
        "{}, {} ok over {}",
        plural(summary.rows, "row"),
        summary.rows_ok(),
        plural(summary.models.len(), "model")
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
            "skipped {} whose status is not ok ({})",
            plural(summary.skipped_total(), "row"),
            detail.join(", ")
        );
    }
    if summary.models.is_empty() {
        return Err(Error::Input(format!(
            "{}: no row with status ok, nothing to plot",
            args.csv.display()
        )));
    }
    target.prepare()?;
    let scatter = ScatterPlot(&summary);
    let memory = MemoryPlot(&summary);
    let has_scatter = !scatter.points().is_empty();
    let has_memory = !memory.models().is_empty();
    let mut written = Vec::new();
    match &target {
        Target::Folder(d) => {
            let means = d.join("plot_means.csv");
            write(&means, &means_csv(&summary))?;
            written.push(means);
            if has_scatter {
                written.extend(emit(&scatter, &target)?);
            } else {
                println!("no model has both fps and JandF: FPS-vs-J&F plot not drawn");
            }
            if has_memory {
                written.extend(emit(&memory, &target)?);
            } else {
                println!("no memory columns with values: memory plot not drawn");
            }
        }
        Target::File { .. } => {
            if has_scatter {
                written.extend(emit(&scatter, &target)?);
            } else if has_memory {
                println!("no model has both fps and JandF: drawing the memory figure");
                written.extend(emit(&memory, &target)?);
            } else {
                return Err(Error::Input(format!(
                    "{}: no model has FPS and J&F or a memory figure, nothing to plot",
                    args.csv.display()
                )));
            }
        }
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
