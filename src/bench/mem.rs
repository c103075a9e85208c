//! The one place the benchmark reads memory figures, on top of [`crate::host::procfs`] (host
//! RSS, its peak, system memory) and [`crate::cuda`] (device probe, the driver memory pool).

use crate::error::Result;
use candle_core::Device;
use serde::{Deserialize, Serialize};

pub use crate::host::procfs::{current_rss_bytes, system_memory, HostSampler};

/// What the benchmark records about the device it runs on (from [`crate::cuda::probe::probe`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device: String,
    pub name: String,
    pub compute_capability: Option<String>,
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// Integrated GPU sharing system memory (Jetson): system memory is the primary figure.
    pub unified_memory: bool,
    pub memory_pool: bool,
    pub jetson: Option<String>,
    pub system_total_bytes: u64,
    pub system_available_bytes: u64,
    pub notes: Vec<String>,
}

/// Probe `device` (`spec` is how the user named it).
pub fn probe(device: &Device, spec: &str) -> Result<DeviceInfo> {
    let r = crate::cuda::probe::probe(device)?;
    let sys = Some(system_memory()?);
    let is_cpu = matches!(device, Device::Cpu);
    Ok(DeviceInfo {
        device: spec.to_string(),
        name: r.name.clone().unwrap_or_else(|| r.kind.clone()),
        compute_capability: r.compute_capability.clone(),
        total_bytes: if is_cpu {
            sys.map(|s| s.total_bytes)
        } else {
            r.total_bytes
        },
        free_bytes: if is_cpu {
            sys.map(|s| s.available_bytes)
        } else {
            r.free_bytes
        },
        unified_memory: r.unified_memory,
        memory_pool: r.memory_pools.unwrap_or(false),
        jetson: r.host.jetson.clone(),
        system_total_bytes: sys.map(|s| s.total_bytes).unwrap_or(0),
        system_available_bytes: sys.map(|s| s.available_bytes).unwrap_or(0),
        notes: r.notes.clone(),
    })
}

/// Device allocator figures since the last reset; None where the device has none (CPU).
#[derive(Debug, Clone, Copy, Default)]
pub struct DevicePeaks {
    pub peak_alloc_bytes: Option<u64>,
    pub peak_reserved_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
}

/// The device's memory accounting for one process (no-op on CPU).
pub struct DeviceMeter {
    mem: Option<crate::cuda::memory::DeviceMemory>,
}

impl DeviceMeter {
    pub fn new(device: &Device) -> Self {
        Self {
            mem: crate::cuda::memory::DeviceMemory::for_device(device),
        }
    }

    /// Restart the device high-water marks (a driver failure is an error, not a blank column).
    pub fn reset_peak(&self) -> Result<()> {
        match &self.mem {
            Some(m) => m.reset_peak(),
            None => Ok(()),
        }
    }

    pub fn peaks(&self) -> Result<DevicePeaks> {
        Ok(match &self.mem {
            None => DevicePeaks::default(),
            Some(m) => DevicePeaks {
                peak_alloc_bytes: Some(m.peak_used_bytes()?),
                peak_reserved_bytes: Some(m.peak_reserved_bytes()?),
                used_bytes: Some(m.used_bytes()?),
            },
        })
    }

    /// Give cached device memory back to the driver (between videos).
    pub fn trim(&self) -> Result<()> {
        match &self.mem {
            Some(m) => m.trim(),
            None => Ok(()),
        }
    }
}
