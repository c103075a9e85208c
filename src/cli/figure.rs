//! The drawing machinery of `vosbench plot`'s figures: a figure ([`Plot`]) is drawn once for any
//! `plotters` backend, as PNG (bitmap, W x H) and as SVG (drawn at [`SVG_SCALE`] times its shown
//! size, every data mark tagged with a `class` and a `<title>`). Text is set in DejaVu Sans,
//! embedded in the binary (`assets/fonts/`, with its licence), so a PNG renders the same on a
//! machine without any system font.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

pub(crate) const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

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

pub(crate) fn fmt_tick(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Figure size in pixels (PNG) and CSS pixels (SVG).
pub(crate) const W: u32 = 800;
pub(crate) const H: u32 = 500;
/// The SVG is drawn this many times larger than it shows (its `viewBox`), so marks land within
/// a tenth of a pixel of their value: plotters places everything on whole backend pixels.
pub(crate) const SVG_SCALE: u32 = 10;
/// Width of the legend column at the right.
const LEGEND_W: u32 = 200;

/// The font family every text of the figures uses, registered from the embedded DejaVu Sans.
const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Make the embedded font the one plotters lays text out with (idempotent: registering the same
/// bytes again replaces the entry with an equal one). Bold text falls back to it too (plotters
/// uses a family's normal face for a style it lacks); the SVG still asks the viewer for bold.
fn register_fonts() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS)
        .map_err(|_| Error::Other("the embedded DejaVu Sans font does not load".into()))
}

/// A data mark as the SVG backend writes it (backend pixels at the drawing scale), with what the
/// SVG says about it.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub shape: MarkShape,
    /// The `class` attribute: the CSV column the mark shows.
    pub class: String,
    /// The `<title>` text (unescaped).
    pub title: String,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum MarkShape {
    Circle { cx: i32, cy: i32, r: i32 },
    Rect { x0: i32, y0: i32, x1: i32, y1: i32 },
}

impl MarkShape {
    /// The start of the element plotters' SVG backend writes for this shape.
    fn svg_prefix(&self) -> String {
        match *self {
            MarkShape::Circle { cx, cy, r } => format!(r#"<circle cx="{cx}" cy="{cy}" r="{r}""#),
            MarkShape::Rect { x0, y0, x1, y1 } => format!(
                r#"<rect x="{x0}" y="{y0}" width="{}" height="{}""#,
                x1 - x0,
                y1 - y0
            ),
        }
    }
}

/// The plotting area of a figure and its scale (1 for PNG, [`SVG_SCALE`] for SVG).
pub(crate) struct Canvas<'a, DB: DrawingBackend> {
    pub root: &'a DrawingArea<DB, Shift>,
    pub k: u32,
}

impl<DB: DrawingBackend> Canvas<'_, DB> {
    /// `v` design pixels at this canvas' scale.
    pub fn px(&self, v: u32) -> u32 {
        v * self.k
    }

    pub fn font(&self, size: u32) -> TextStyle<'static> {
        (FONT, (size * self.k) as f64).into_font().color(&BLACK)
    }

    pub fn bold(&self, size: u32) -> TextStyle<'static> {
        (FONT, (size * self.k) as f64, FontStyle::Bold)
            .into_font()
            .color(&BLACK)
    }
}

pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Other(format!("drawing a figure: {e}"))
}

/// A figure: its file stem and how to draw it on any backend; the drawing returns the data marks
/// (for the SVG's classes and titles).
pub(crate) trait Plot {
    fn stem(&self) -> &'static str;
    fn draw<DB: DrawingBackend>(&self, c: &Canvas<'_, DB>) -> Result<Vec<Mark>>;
}

/// Title, footnote (random weights), and the chart and legend areas below the title.
pub(crate) fn frame<DB: DrawingBackend>(
    c: &Canvas<'_, DB>,
    title: &str,
    footnote: Option<&str>,
) -> Result<(DrawingArea<DB, Shift>, DrawingArea<DB, Shift>)> {
    c.root.fill(&WHITE).map_err(draw_err)?;
    let body = c.root.titled(title, c.bold(17)).map_err(draw_err)?;
    let body = match footnote {
        Some(note) => {
            let (_, h) = body.dim_in_pixel();
            let (main, foot) = body.split_vertically(h.saturating_sub(c.px(24)));
            foot.draw_text(
                note,
                &c.font(12).color(&RED_NOTE),
                (c.px(10) as i32, c.px(4) as i32),
            )
            .map_err(draw_err)?;
            main
        }
        None => body,
    };
    let (w, _) = body.dim_in_pixel();
    Ok(body.split_horizontally(w.saturating_sub(c.px(LEGEND_W))))
}

const RED_NOTE: RGBColor = RGBColor(0xb0, 0x00, 0x00);

/// The footnote of a figure drawn from random weights.
pub(crate) fn random_note(models: &[String]) -> Option<String> {
    (!models.is_empty()).then(|| {
        format!(
            "Random weights ({}): speed and memory only, accuracy meaningless",
            models.join(", ")
        )
    })
}

/// A legend marker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Marker {
    Dot(RGBColor),
    Square(RGBColor),
    /// A short line with a dot (filled) or a ring on it.
    Line(RGBColor, bool),
}

/// A legend entry in the legend column: its marker and label on row `row`.
pub(crate) fn legend_entry<DB: DrawingBackend>(
    c: &Canvas<'_, DB>,
    area: &DrawingArea<DB, Shift>,
    row: u32,
    label: &str,
    marker: Marker,
) -> Result<()> {
    let y = (c.px(30) + c.px(22) * row) as i32;
    let x = c.px(18) as i32;
    let r = c.px(5) as i32;
    let dot = |color: RGBColor, filled: bool| {
        let style = if filled {
            color.filled()
        } else {
            color.stroke_width(c.px(2))
        };
        Circle::new((x, y), r, style)
    };
    match marker {
        Marker::Dot(color) => area.draw(&dot(color, true)),
        Marker::Square(color) => area.draw(&Rectangle::new(
            [(x - r, y - r), (x + r, y + r)],
            color.filled(),
        )),
        Marker::Line(color, filled) => area
            .draw(&PathElement::new(
                vec![(x - 2 * r, y), (x + 2 * r, y)],
                color.stroke_width(c.px(2)),
            ))
            .and_then(|_| area.draw(&dot(color, filled))),
    }
    .map_err(draw_err)?;
    area.draw_text(
        label,
        &c.font(13).pos(Pos::new(HPos::Left, VPos::Center)),
        (x + 3 * r, y),
    )
    .map_err(draw_err)?;
    Ok(())
}

/// Draw `plot` as SVG: drawn at [`SVG_SCALE`] and shown at [`W`] x [`H`], each data mark tagged
/// with its class and title.
pub(crate) fn render_svg(plot: &impl Plot) -> Result<String> {
    register_fonts()?;
    let mut svg = String::new();
    let marks = {
        let backend = SVGBackend::with_string(&mut svg, (W * SVG_SCALE, H * SVG_SCALE));
        let root = backend.into_drawing_area();
        let marks = plot.draw(&Canvas {
            root: &root,
            k: SVG_SCALE,
        })?;
        root.present().map_err(draw_err)?;
        marks
    };
    tag_marks(&svg, &marks)
}

/// Give each mark's element (the first untagged one with its exact geometry) its class and
/// title, and make the document show at W x H.
fn tag_marks(svg: &str, marks: &[Mark]) -> Result<String> {
    let mut lines: Vec<String> = svg.lines().map(str::to_string).collect();
    let head = format!(
        r#"<svg width="{}" height="{}" "#,
        W * SVG_SCALE,
        H * SVG_SCALE
    );
    match lines.first_mut() {
        Some(l) if l.starts_with(&head) => {
            *l = l.replacen(&head, &format!(r#"<svg width="{W}" height="{H}" "#), 1);
        }
        _ => {
            return Err(Error::Other(
                "plotters wrote an unexpected SVG header".into(),
            ))
        }
    }
    for m in marks {
        let prefix = m.shape.svg_prefix();
        let tag = match m.shape {
            MarkShape::Circle { .. } => "circle",
            MarkShape::Rect { .. } => "rect",
        };
        let line = lines
            .iter_mut()
            .find(|l| l.starts_with(&prefix))
            .ok_or_else(|| {
                Error::Other(format!("figure mark {prefix} not found in the drawn SVG"))
            })?;
        let body = line[1 + tag.len()..].trim_end_matches("/>").to_string();
        *line = format!(
            r#"<{tag} class="{}"{body}><title>{}</title></{tag}>"#,
            esc(&m.class),
            esc(&m.title)
        );
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// Draw `plot` as a PNG file of W x H pixels.
pub(crate) fn render_png(plot: &impl Plot, path: &Path) -> Result<()> {
    register_fonts()?;
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let backend = BitMapBackend::with_buffer(&mut buf, (W, H));
        let root = backend.into_drawing_area();
        plot.draw(&Canvas { root: &root, k: 1 })?;
        root.present().map_err(draw_err)?;
    }
    image::save_buffer_with_format(
        path,
        &buf,
        W,
        H,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Input(format!("{}: cannot write PNG: {e}", path.display())))
}

/// The (x, y) range of a chart over values, with round limits.
pub(crate) fn range(
    vals: impl Iterator<Item = f64>,
    from_zero: bool,
) -> Option<std::ops::Range<f64>> {
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return None;
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    let (lo, hi, _) = nice_ticks(lo, hi, 6);
    Some(lo..hi)
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Where the figures go: a folder (every figure as SVG and PNG) or one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Folder(PathBuf),
    File { path: PathBuf, png: bool },
}

impl Target {
    /// `--out` as given (a path ending in .svg or .png is one file), else the CSV's folder.
    pub fn of(out: Option<&Path>, csv: &Path) -> Target {
        let Some(out) = out else {
            return Target::Folder(
                csv.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            );
        };
        match out
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Target::File {
                path: out.to_path_buf(),
                png: false,
            },
            Some("png") => Target::File {
                path: out.to_path_buf(),
                png: true,
            },
            _ => Target::Folder(out.to_path_buf()),
        }
    }

    pub(crate) fn prepare(&self) -> Result<()> {
        let dir = match self {
            Target::Folder(d) => d.as_path(),
            Target::File { path, .. } => match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => return Ok(()),
            },
        };
        if dir.is_file() {
            return Err(Error::Input(format!(
                "{}: is a file, not a folder (give a folder, or a file ending in .svg or .png)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
    }
}

/// Draw `plot` to the target: in a folder as `<stem>.svg` and `<stem>.png`, or into the one file.
/// Returns the paths written.
pub(crate) fn emit(plot: &impl Plot, target: &Target) -> Result<Vec<PathBuf>> {
    match target {
        Target::Folder(d) => {
            let svg = d.join(format!("{}.svg", plot.stem()));
            write(&svg, &render_svg(plot)?)?;
            let png = d.join(format!("{}.png", plot.stem()));
            render_png(plot, &png)?;
            Ok(vec![svg, png])
        }
        Target::File { path, png: true } => {
            render_png(plot, path)?;
            Ok(vec![path.clone()])
        }
        Target::File { path, png: false } => {
            write(path, &render_svg(plot)?)?;
            Ok(vec![path.clone()])
        }
    }
}
