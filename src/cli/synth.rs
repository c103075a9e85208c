//! `vosbench synth`: a synthetic SA-V-layout split for demos and tests.

use crate::data::synth::{write_split, SynthOptions};
use crate::{Error, Result};
use std::path::PathBuf;

/// Write a synthetic SA-V-layout split: `JPEGImages_24fps/<video>/<frame:05>.jpg`,
/// `Annotations_6fps/<video>/<obj:03>/<frame:05>.png` on every 4th frame, and `synth.txt`.
/// Textured objects move, rotate, occlude each other, appear late and leave the frame.
/// The same options always give byte-identical files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (created; existing files with the same names are overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of videos.
    #[arg(long, default_value_t = 2)]
    pub videos: usize,
    /// Frames per video (24 fps; masks on every 4th).
    #[arg(long, default_value_t = 24)]
    pub frames: usize,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "320x240", value_parser = parse_size)]
    pub size: (usize, usize),
    /// Objects per video.
    #[arg(long, default_value_t = 4)]
    pub objects: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Parse `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}': expected WIDTHxHEIGHT, e.g. 320x240"))?;
    let w = w.trim().parse().map_err(|_| format!("'{s}': bad width"))?;
    let h = h.trim().parse().map_err(|_| format!("'{s}': bad height"))?;
    Ok((w, h))
}

pub fn run(args: Args) -> Result<()> {
    let start = std::time::Instant::now();
    let opts = SynthOptions {
        videos: args.videos,
        frames: args.frames,
        width: args.size.0,
        height: args.size.1,
        seed: args.seed,
        objects: args.objects,
    };
    if args.out.is_file() {
        return Err(Error::Input(format!(
            "{} is a file, not a folder",
            args.out.display()
        )));
    }
    let s = write_split(&args.out, &opts)?;
    println!(
        "wrote {} video(s), {} frames, {} object(s), {} masks to {} in {:.2}s",
        s.videos.len(),
        s.frames,
        s.objects.iter().sum::<usize>(),
        s.masks,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
