//! What several subcommands share: turning `--device` and `--precision` into a device and a
//! dtype.

use crate::error::{Error, Result};
use candle_core::Device;

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
