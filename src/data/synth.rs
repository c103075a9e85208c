//! A synthetic SA-V-layout split: textured, scrolling backgrounds and several textured objects
//! (ellipses, boxes, stars) that move, rotate, occlude each other, appear late and leave the
//! frame. Deterministic for a seed (same options: identical bytes).
//!
//! Layout written under the output folder:
//! - `JPEGImages_24fps/<video>/<frame:05>.jpg`: every frame;
//! - `Annotations_6fps/<video>/<obj:03>/<frame:05>.png`: every 4th frame (0, 4, 8, ...), one
//!   binary PNG (0/255) per object, the *visible* part (occluded pixels excluded), empty before
//!   the object appears and after it has left; objects never visible on an annotated frame are
//!   not written;
//! - `synth.txt`: the video names, one per line (`--split-name synth`).

use super::masks::{write_mask_png, Mask};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// The annotation stride of SA-V (24 fps frames, 6 fps masks).
pub const ANNOTATION_STRIDE: usize = 4;

#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub videos: usize,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// Objects per video.
    pub objects: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            videos: 2,
            frames: 24,
            width: 320,
            height: 240,
            seed: 0,
            objects: 4,
        }
    }
}

/// What was written.
#[derive(Clone, Debug)]
pub struct SynthSummary {
    pub videos: Vec<String>,
    /// Objects written per video.
    pub objects: Vec<usize>,
    pub frames: usize,
    pub masks: usize,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Ellipse,
    Box,
    Star(u32),
}

#[derive(Clone, Debug)]
struct Object {
    shape: Shape,
    /// Half extents in pixels.
    rx: f64,
    ry: f64,
    /// Centre at frame `start`, velocity per frame, angle and angular velocity.
    x0: f64,
    y0: f64,
    vx: f64,
    vy: f64,
    a0: f64,
    va: f64,
    start: usize,
    colors: [[f64; 3]; 2],
    /// Stripe frequency (radians per pixel) and checker/stripe choice.
    freq: f64,
    checker: bool,
}

impl Object {
    fn inside(&self, u: f64, v: f64) -> bool {
        let (nu, nv) = (u / self.rx, v / self.ry);
        match self.shape {
            Shape::Ellipse => nu * nu + nv * nv <= 1.0,
            Shape::Box => nu.abs() <= 1.0 && nv.abs() <= 1.0,
            Shape::Star(k) => {
                let r = (nu * nu + nv * nv).sqrt();
                let t = nv.atan2(nu);
                r <= 0.55 + 0.45 * (k as f64 * t).cos().abs()
            }
        }
    }

    fn color(&self, u: f64, v: f64) -> [f64; 3] {
        let on = if self.checker {
            ((u * self.freq).sin() * (v * self.freq).sin()) > 0.0
        } else {
            ((u + 0.5 * v) * self.freq).sin() > 0.0
        };
        self.colors[on as usize]
    }
}

fn random_color(rng: &mut ChaCha8Rng) -> [f64; 3] {
    [
        rng.gen_range(20.0..235.0),
        rng.gen_range(20.0..235.0),
        rng.gen_range(20.0..235.0),
    ]
}

fn make_objects(rng: &mut ChaCha8Rng, n: usize, w: f64, h: f64, frames: usize) -> Vec<Object> {
    let span = frames.max(1) as f64;
    (0..n)
        .map(|i| {
            let shape = match rng.gen_range(0..3) {
                0 => Shape::Ellipse,
                1 => Shape::Box,
                _ => Shape::Star(rng.gen_range(2..4)),
            };
            let size = w.min(h);
            let rx = size * rng.gen_range(0.08..0.2);
            let ry = size * rng.gen_range(0.08..0.2);
            // Object 1 appears late; object 2 leaves the frame; the rest wander.
            let start = if i == 1 && frames > 2 * ANNOTATION_STRIDE {
                rng.gen_range(frames / 4..=frames / 2)
            } else {
                0
            };
            let (x0, y0, vx, vy) = if i == 2 {
                let x0 = w * rng.gen_range(0.55..0.75);
                let travel = w - x0 + 2.5 * rx.max(ry);
                (
                    x0,
                    h * rng.gen_range(0.3..0.7),
                    travel / (0.75 * span),
                    rng.gen_range(-0.3..0.3),
                )
            } else {
                (
                    w * rng.gen_range(0.2..0.8),
                    h * rng.gen_range(0.2..0.8),
                    rng.gen_range(-1.0..1.0) * w / (2.0 * span),
                    rng.gen_range(-1.0..1.0) * h / (2.0 * span),
                )
            };
            Object {
                shape,
                rx,
                ry,
                x0,
                y0,
                vx,
                vy,
                a0: rng.gen_range(0.0..std::f64::consts::TAU),
                va: rng.gen_range(-0.08..0.08),
                start,
                colors: [random_color(rng), random_color(rng)],
                freq: rng.gen_range(0.3..0.9),
                checker: rng.gen_bool(0.5),
            }
        })
        .collect()
}

struct Background {
    width: usize,
    height: usize,
    pixels: Vec<[f64; 3]>,
    pan: f64,
    frames: usize,
}

impl Background {
    fn new(rng: &mut ChaCha8Rng, w: usize, h: usize, frames: usize) -> Self {
        let pan: f64 = rng.gen_range(-1.5..1.5);
        let width = w + (pan.abs() * frames as f64).ceil() as usize + 2;
        let base = random_color(rng);
        let waves: Vec<(f64, f64, f64, usize)> = (0..4)
            .map(|_| {
                (
                    rng.gen_range(0.01..0.12),
                    rng.gen_range(0.01..0.12),
                    rng.gen_range(0.0..6.3),
                    rng.gen_range(0..3),
                )
            })
            .collect();
        let mut pixels = Vec::with_capacity(width * h);
        for y in 0..h {
            for x in 0..width {
                let mut c = base;
                for &(fx, fy, ph, ch) in &waves {
                    c[ch] += 40.0 * (x as f64 * fx + y as f64 * fy + ph).sin();
                }
                let n: f64 = rng.gen_range(-12.0..12.0);
                pixels.push([c[0] + n, c[1] + n, c[2] + n]);
            }
        }
        Self {
            width,
            height: h,
            pixels,
            pan,
            frames,
        }
    }

    /// Horizontal scroll of frame `t`, always within the texture.
    fn offset(&self, t: usize) -> usize {
        let max_off = self.pan.abs() * self.frames as f64;
        let off = if self.pan >= 0.0 {
            self.pan * t as f64
        } else {
            max_off + self.pan * t as f64
        };
        off.max(0.0).floor() as usize
    }

    fn at(&self, x: usize, y: usize, off: usize) -> [f64; 3] {
        let sx = (x + off).min(self.width - 1);
        self.pixels[y.min(self.height - 1) * self.width + sx]
    }
}

/// One rendered frame: RGB pixels and, per pixel, the visible object (0 = background).
fn render(bg: &Background, objects: &[Object], w: usize, h: usize, t: usize) -> (Vec<u8>, Vec<u8>) {
    let mut owner = vec![0u8; w * h];
    let mut rgb: Vec<[f64; 3]> = Vec::with_capacity(w * h);
    let off = bg.offset(t);
    for y in 0..h {
        for x in 0..w {
            rgb.push(bg.at(x, y, off));
        }
    }
    // Back to front: later objects occlude earlier ones.
    for (k, o) in objects.iter().enumerate() {
        if t < o.start {
            continue;
        }
        let dt = (t - o.start) as f64;
        let (cx, cy, a) = (o.x0 + o.vx * dt, o.y0 + o.vy * dt, o.a0 + o.va * dt);
        let (sa, ca) = a.sin_cos();
        let reach = o.rx.max(o.ry) * 1.01 + 1.0;
        let xlo = (cx - reach).floor().max(0.0) as usize;
        let ylo = (cy - reach).floor().max(0.0) as usize;
        let xhi = ((cx + reach).ceil().max(0.0) as usize).min(w);
        let yhi = ((cy + reach).ceil().max(0.0) as usize).min(h);
        for y in ylo..yhi {
            for x in xlo..xhi {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let (u, v) = (ca * dx + sa * dy, -sa * dx + ca * dy);
                if o.inside(u, v) {
                    owner[y * w + x] = (k + 1) as u8;
                    rgb[y * w + x] = o.color(u, v);
                }
            }
        }
    }
    let bytes = rgb
        .iter()
        .flat_map(|c| c.map(|v| v.round().clamp(0.0, 255.0) as u8))
        .collect();
    (bytes, owner)
}

fn write_jpeg(path: &Path, rgb: &[u8], w: usize, h: usize) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc =
        image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), 90);
    enc.encode(rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Input(format!("{}: cannot write JPEG: {e}", path.display())))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))
}

/// Write a synthetic split under `out` (see the module doc).
pub fn write_split(out: &Path, opts: &SynthOptions) -> Result<SynthSummary> {
    let (w, h) = (opts.width, opts.height);
    if w < 16 || h < 16 || w > 8192 || h > 8192 {
        return Err(Error::Input(format!(
            "synthetic frame size {w}x{h}: each side must be 16..=8192"
        )));
    }
    if opts.frames == 0 || opts.videos == 0 {
        return Err(Error::Input(
            "need at least one video of at least one frame".into(),
        ));
    }
    if opts.objects == 0 || opts.objects > 200 {
        return Err(Error::Input(format!(
            "objects per video {}: must be 1..=200",
            opts.objects
        )));
    }
    let mut summary = SynthSummary {
        videos: Vec::new(),
        objects: Vec::new(),
        frames: 0,
        masks: 0,
    };
    for vi in 0..opts.videos {
        let name = format!("synth_{vi:03}");
        let mut rng = ChaCha8Rng::seed_from_u64(
            opts.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(vi as u64),
        );
        let bg = Background::new(&mut rng, w, h, opts.frames);
        let objects = make_objects(&mut rng, opts.objects, w as f64, h as f64, opts.frames);
        let jpg_dir = out.join("JPEGImages_24fps").join(&name);
        mkdir(&jpg_dir)?;
        let mut masks: Vec<Vec<(usize, Mask)>> = vec![Vec::new(); objects.len()];
        for t in 0..opts.frames {
            let (rgb, owner) = render(&bg, &objects, w, h, t);
            write_jpeg(&jpg_dir.join(format!("{t:05}.jpg")), &rgb, w, h)?;
            if t.is_multiple_of(ANNOTATION_STRIDE) {
                for (k, list) in masks.iter_mut().enumerate() {
                    let data = owner.iter().map(|&o| o as usize == k + 1).collect();
                    list.push((
                        t,
                        Mask {
                            width: w,
                            height: h,
                            data,
                        },
                    ));
                }
            }
        }
        summary.frames += opts.frames;
        let ann_dir = out.join("Annotations_6fps").join(&name);
        let mut written = 0;
        for list in masks.iter() {
            if list.iter().all(|(_, m)| m.is_empty()) {
                continue;
            }
            let obj_dir: PathBuf = ann_dir.join(format!("{written:03}"));
            for (t, m) in list {
                write_mask_png(&obj_dir.join(format!("{t:05}.png")), m)?;
                summary.masks += 1;
            }
            written += 1;
        }
        mkdir(&ann_dir)?;
        summary.objects.push(written);
        summary.videos.push(name);
    }
    let list = out.join("synth.txt");
    std::fs::write(&list, summary.videos.join("\n") + "\n").map_err(|e| Error::io(&list, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((
                        p.strip_prefix(root).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let opts = SynthOptions {
            videos: 1,
            frames: 9,
            width: 64,
            height: 48,
            seed: 3,
            objects: 3,
        };
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let sa = write_split(a.path(), &opts).unwrap();
        write_split(b.path(), &opts).unwrap();
        write_split(
            c.path(),
            &SynthOptions {
                seed: 4,
                ..opts.clone()
            },
        )
        .unwrap();
        let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
        assert_eq!(fa, fb);
        assert_ne!(fa, fc);
        assert_eq!(sa.frames, 9);
        assert_eq!(
            fa.iter()
                .filter(|(p, _)| p.extension().is_some_and(|e| e == "jpg"))
                .count(),
            9
        );
    }

    #[test]
    fn bad_options_are_input_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = write_split(
            d.path(),
            &SynthOptions {
                width: 4,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
