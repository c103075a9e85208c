//! Small helpers several subcommands share: device selection, weight lookup, and writing mask
//! and overlay PNGs.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// Parse `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = if spec == "cuda" {
        0
    } else if let Some(n) = spec.strip_prefix("cuda:") {
        n.parse::<usize>().map_err(|_| {
            Error::Input(format!("bad device '{spec}': expected cpu, cuda or cuda:N"))
        })?
    } else {
        return Err(Error::Input(format!(
            "bad device '{spec}': expected cpu, cuda or cuda:N"
        )));
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::Input(format!(
            "device '{spec}' needs a CUDA build (cargo build --release --features cudnn)"
        )));
    }
    crate::cuda::open_cuda(ordinal)
        .map_err(|e| Error::Input(format!("cannot open CUDA device {ordinal}: {e}")))
}

/// The model dtype of `--precision` for a run on the CPU (`cpu`) or a GPU: bf16 needs CUDA, as
/// candle's CPU matmul has no bf16 kernel.
pub fn model_dtype(precision: &str, cpu: bool) -> Result<candle_core::DType> {
    Ok(precision
        .parse::<crate::config::Precision>()?
        .check_device(cpu)?
        .dtype())
}

/// Where the converted checkpoint of a variant lives.
pub fn converted_path(weights_dir: &Path, cfg: &ModelConfig) -> PathBuf {
    weights_dir.join(format!("{}.safetensors", cfg.name))
}

/// Write a PNG through a temp file next to `path`, then rename it into place.
pub fn write_png_atomic(
    path: &Path,
    save: impl FnOnce(&Path) -> image::ImageResult<()>,
) -> Result<()> {
    let tmp = path.with_extension("png.tmp");
    save(&tmp).map_err(|e| Error::Other(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write the frame at `frame` with the pixels of `fg` (row-major, the frame's size) tinted green.
pub fn write_overlay(path: &Path, frame: &Path, fg: &[bool]) -> Result<()> {
    let mut img = image::open(frame)
        .map_err(|e| Error::Input(format!("cannot read frame {}: {e}", frame.display())))?
        .to_rgb8();
    for (px, &on) in img.pixels_mut().zip(fg) {
        if on {
            px[0] = ((px[0] as u16 + 30) / 2) as u8;
            px[1] = ((px[1] as u16 + 255) / 2) as u8;
            px[2] = ((px[2] as u16 + 60) / 2) as u8;
        }
    }
    write_png_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
    })
}
