//! What several subcommands share: turning a `--device` flag into a device, and the synthetic
//! frames the probe's checks and `info --flops` track.

use crate::error::{Error, Result};
use candle_core::Device;

/// Check the text of a device (`cpu`, `cuda` or `cuda:N`) without opening it; returns it trimmed.
pub fn check_device_spec(spec: &str) -> Result<String> {
    let s = spec.trim();
    let ok = s == "cpu"
        || s == "cuda"
        || s.strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok());
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::Input(format!(
            "bad device '{s}': expected cpu, cuda or cuda:N"
        )))
    }
}

/// Parse `cpu`, `cuda` or `cuda:N` and open that device ([`crate::cuda::open_device`], which
/// counts every open of the process).
pub fn parse_device(spec: &str) -> Result<Device> {
    crate::cuda::open_device(spec)
}

/// A textured synthetic RGB frame, `side` x `side` (interleaved): smooth gradients, with bright
/// discs of radius `radius * side` centred at `discs` (fractions of the side), moved right by
/// `shift` pixels.
pub fn synthetic_frame(side: usize, shift: usize, discs: &[(f32, f32)], radius: f32) -> Vec<u8> {
    let mut px = Vec::with_capacity(side * side * 3);
    let (s, r) = (side as f32, radius * side as f32);
    for y in 0..side {
        for x in 0..side {
            let inside = discs.iter().any(|&(cx, cy)| {
                let dx = x as f32 - (cx * s + shift as f32);
                let dy = y as f32 - cy * s;
                (dx * dx + dy * dy).sqrt() < r
            });
            px.push(if inside { 230 } else { (x * 255 / side) as u8 });
            px.push(if inside { 200 } else { (y * 255 / side) as u8 });
            px.push(((x + y + shift) % 256) as u8);
        }
    }
    px
}
