//! Small helpers several subcommands share: device selection and weight lookup.

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
    Device::new_cuda(ordinal)
        .map_err(|e| Error::Input(format!("cannot open CUDA device {ordinal}: {e}")))
}

/// Where the converted checkpoint of a variant lives.
pub fn converted_path(weights_dir: &Path, cfg: &ModelConfig) -> PathBuf {
    weights_dir.join(format!("{}.safetensors", cfg.name))
}
