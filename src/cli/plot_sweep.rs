//! The figures of an objects sweep (`objects_sweep.csv` of `vosbench bench --objects-sweep`):
//! frames per second and peak memory against the number of objects in the session, one line per
//! model and batching mode (solid with filled dots: batched; dashed with rings: looped), on a
//! logarithmic object axis. Rows whose status is not `ok` are counted and left out.

use crate::bench::sweep::{is_random, read_sweep_rows, SweepRow};
use crate::cli::figure::{
    draw_err, emit, fmt_tick, frame, legend_entry, nice_ticks, random_note, Canvas, Mark,
    MarkShape, Marker, Plot, Target, COLORS,
};
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// One figure of a sweep: what it shows of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepFigure {
    Fps,
    Memory,
}

impl SweepFigure {
    fn value(self, r: &SweepRow) -> Option<f64> {
        match self {
            SweepFigure::Fps => r.fps,
            SweepFigure::Memory => r.peak_MiB(),
        }
    }

    fn class(self) -> &'static str {
        match self {
            SweepFigure::Fps => "fps",
            SweepFigure::Memory => "peak_MiB",
        }
    }
}

/// A line of a sweep figure: model, batching, and its (objects, value) points ascending.
pub type SweepLine = (String, String, Vec<(usize, f64)>);

/// The lines of a figure from the `ok` rows: by model (name order), batched before looped.
pub fn sweep_lines(rows: &[SweepRow], fig: SweepFigure) -> Vec<SweepLine> {
    let mut keys: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.status == "ok")
        .map(|r| (r.model.clone(), r.batching.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(model, batching)| {
            let mut pts: Vec<(usize, f64)> = rows
                .iter()
                .filter(|r| r.status == "ok" && r.model == model && r.batching == batching)
                .filter_map(|r| Some((r.objects, fig.value(r)?)))
                .collect();
            pts.sort_by_key(|p| p.0);
            (model, batching, pts)
        })
        .filter(|l| !l.2.is_empty())
        .collect()
}

/// A sweep figure over the rows of a CSV.
pub struct SweepPlot<'r> {
    pub rows: &'r [SweepRow],
    pub figure: SweepFigure,
}

impl Plot for SweepPlot<'_> {
    fn stem(&self) -> &'static str {
        match self.figure {
            SweepFigure::Fps => "objects_fps",
            SweepFigure::Memory => "objects_memory",
        }
    }

    fn draw<DB: DrawingBackend>(&self, c: &Canvas<'_, DB>) -> Result<Vec<Mark>> {
        let lines = sweep_lines(self.rows, self.figure);
        let mut random: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.status == "ok" && is_random(&r.weights))
            .map(|r| r.model.clone())
            .collect();
        random.sort();
        random.dedup();
        let note = random_note(&random);
        let mem_label = if self.rows.iter().any(|r| r.gpu_peak_alloc_MiB.is_some()) {
            "peak device memory allocated (MiB)"
        } else {
            "peak process RSS (MiB)"
        };
        let (title, ydesc) = match self.figure {
            SweepFigure::Fps => (
                "Frames per second against objects in the session",
                "frames per second",
            ),
            SweepFigure::Memory => ("Peak memory against objects in the session", mem_label),
        };
        let (left, legend) = frame(c, title, note.as_deref())?;
        let xs = lines.iter().flat_map(|l| l.2.iter().map(|p| p.0 as f64));
        let (xlo, xhi) = xs.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let ymax = lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let (_, yhi, _) = nice_ticks(0.0, ymax, 6);
        let marks = self.chart(c, &left, xlo, xhi, yhi, ydesc, &lines)?;
        for (row, (model, batching, _)) in lines.iter().enumerate() {
            let (color, looped) = self.style_of(&lines, model, batching);
            legend_entry(
                c,
                &legend,
                row as u32,
                &format!("{model} {batching}"),
                Marker::Line(color, !looped),
            )?;
        }
        Ok(marks)
    }
}

impl SweepPlot<'_> {
    /// Colour by model, dashes and rings for looped.
    fn style_of(&self, lines: &[SweepLine], model: &str, batching: &str) -> (RGBColor, bool) {
        let mut models: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
        models.dedup();
        let i = models.iter().position(|m| *m == model).unwrap_or(0);
        (COLORS[i % COLORS.len()], batching == "looped")
    }

    #[allow(clippy::too_many_arguments)]
    fn chart<DB: DrawingBackend>(
        &self,
        c: &Canvas<'_, DB>,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        xlo: f64,
        xhi: f64,
        yhi: f64,
        ydesc: &str,
        lines: &[SweepLine],
    ) -> Result<Vec<Mark>> {
        let xr = (xlo / 1.25..xhi * 1.25).log_scale();
        let mut chart = ChartBuilder::on(area)
            .margin(c.px(12))
            .x_label_area_size(c.px(45))
            .y_label_area_size(c.px(70))
            .build_cartesian_2d(xr, 0.0..yhi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("objects in the session")
            .y_desc(ydesc)
            .label_style(c.font(12))
            .axis_desc_style(c.font(14))
            .x_label_formatter(&|v| fmt_tick(*v))
            .y_label_formatter(&|v| fmt_tick(*v))
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_err)?;
        let r = c.px(5) as i32;
        let mut marks = Vec::new();
        for (model, batching, pts) in lines {
            let (color, looped) = self.style_of(lines, model, batching);
            let stroke = color.stroke_width(c.px(2));
            let xy: Vec<(f64, f64)> = pts.iter().map(|(n, v)| (*n as f64, *v)).collect();
            if looped {
                chart
                    .draw_series(DashedLineSeries::new(xy.clone(), c.px(8), c.px(5), stroke))
                    .map_err(draw_err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(xy.clone(), stroke))
                    .map_err(draw_err)?;
            }
            for ((n, v), p) in pts.iter().zip(&xy) {
                let style = if looped { stroke } else { color.filled() };
                chart
                    .draw_series(std::iter::once(Circle::new(*p, r, style)))
                    .map_err(draw_err)?;
                let (cx, cy) = chart.backend_coord(p);
                let unit = match self.figure {
                    SweepFigure::Fps => "FPS",
                    SweepFigure::Memory => "MiB",
                };
                marks.push(Mark {
                    shape: MarkShape::Circle { cx, cy, r },
                    class: self.figure.class().into(),
                    title: format!("{model} {batching}, {n} objects: {v:.2} {unit}"),
                });
            }
        }
        Ok(marks)
    }
}

/// `vosbench plot` on an objects-sweep CSV.
pub fn run(csv: &Path, target: &Target) -> Result<()> {
    let rows = read_sweep_rows(csv)?;
    let ok = rows.iter().filter(|r| r.status == "ok").count();
    println!(
        "{} sweep rows, {ok} ok; {} not ok left out",
        rows.len(),
        rows.len() - ok
    );
    if sweep_lines(&rows, SweepFigure::Fps).is_empty() {
        return Err(Error::Input(format!(
            "{}: no sweep row with status ok and a frame rate, nothing to plot",
            csv.display()
        )));
    }
    target.prepare()?;
    let mut written = emit(
        &SweepPlot {
            rows: &rows,
            figure: SweepFigure::Fps,
        },
        target,
    )?;
    if matches!(target, Target::Folder(_)) {
        if sweep_lines(&rows, SweepFigure::Memory).is_empty() {
            println!("no memory figures in the sweep: memory plot not drawn");
        } else {
            written.extend(emit(
                &SweepPlot {
                    rows: &rows,
                    figure: SweepFigure::Memory,
                },
                target,
            )?);
        }
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
