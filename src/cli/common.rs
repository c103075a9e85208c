//! What several subcommands share: turning a `--device` flag into a device.

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
