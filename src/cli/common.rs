//! What several subcommands share: turning a `--device` flag into a device.

use crate::error::Result;
use candle_core::Device;

/// Parse `cpu`, `cuda` or `cuda:N` and open that device ([`crate::cuda::open_device`], which
/// counts every open of the process).
pub fn parse_device(spec: &str) -> Result<Device> {
    crate::cuda::open_device(spec)
}
