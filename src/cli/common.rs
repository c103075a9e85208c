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

/// Parse `cpu`, `cuda` or `cuda:N` and open that device ([`crate::cuda::open_device`], which
/// counts every open of the process).
pub fn parse_device(spec: &str) -> Result<Device> {
    crate::cuda::open_device(spec)
}
