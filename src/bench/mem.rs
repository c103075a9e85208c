//! The one place the benchmark reads memory figures, on top of [`crate::host::procfs`] (host
//! RSS, its peak, system memory) and [`crate::cuda`] (device probe, the driver memory pool); and
//! the budget those figures are held against ([`MemBudget`], [`BudgetFigure`]).

use crate::error::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::host::jetson::UnifiedMemory;
pub use crate::host::procfs::{current_rss_bytes, system_memory, HostSampler};
use crate::host::HostRoot;

const MIB: u64 = 1 << 20;

/// A memory budget (`--mem-budget-mb`), held in bytes; `inference_config.json` stores the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemBudget(u64);

impl MemBudget {
    /// The budget of `--mem-budget-mb mib`.
    pub fn from_mib(mib: u64) -> Result<MemBudget> {
        mib.checked_mul(MIB).map(MemBudget).ok_or_else(|| {
            Error::Input(format!(
                "--mem-budget-mb {mib} is too large (more than 2^64 bytes)"
            ))
        })
    }

    pub fn from_bytes(bytes: u64) -> MemBudget {
        MemBudget(bytes)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Whether a figure of `bytes` stays within the budget.
    pub fn allows(self, bytes: u64) -> bool {
        bytes <= self.0
    }
}

impl fmt::Display for MemBudget {
    /// In MiB as `--mem-budget-mb` takes it (a whole number when the bytes are whole MiB).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(MIB) {
            write!(f, "{}", self.0 / MIB)
        } else {
            write!(f, "{:.1}", self.0 as f64 / MIB as f64)
        }
    }
}

/// The memory figure compared with the budget; setup picks it from the device, and phase B reads
/// it after every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetFigure {
    /// The process's resident set (CPU).
    ProcessRss,
    /// Live bytes in the device memory pool (discrete GPU).
    Device,
    /// The machine's used memory, `MemTotal - MemAvailable` (unified memory: Jetson).
    System,
}

impl BudgetFigure {
    /// The figure that bounds a run on `device` (`info`: what the probe found).
    pub fn for_device(device: &Device, info: &DeviceInfo) -> BudgetFigure {
        if matches!(device, Device::Cpu) {
            BudgetFigure::ProcessRss
        } else if info.unified_memory {
            BudgetFigure::System
        } else {
            BudgetFigure::Device
        }
    }

    /// The name in `inference_config.json` and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetFigure::ProcessRss => "process_rss",
            BudgetFigure::Device => "device",
            BudgetFigure::System => "system",
        }
    }

    /// The figure now; `rss` is the process RSS just read (the device figure falls back to it
    /// where the device has no memory pool).
    pub fn read(self, meter: &DeviceMeter, rss: u64) -> Result<u64> {
        Ok(match self {
            BudgetFigure::ProcessRss => rss,
            BudgetFigure::Device => meter.peaks()?.used_bytes.unwrap_or(rss),
            BudgetFigure::System => system_memory()?.used_bytes,
        })
    }
}

impl fmt::Display for BudgetFigure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// The CUDA version the loaded driver supports (`cuDriverGetVersion`; None on the CPU).
    #[serde(default)]
    pub driver_cuda_version: Option<String>,
    /// The cuDNN the binary loaded (`cudnnGetVersion`; cudnn builds on a GPU only).
    #[serde(default)]
    pub cudnn_version: Option<String>,
    pub system_total_bytes: u64,
    pub system_available_bytes: u64,
    pub notes: Vec<String>,
}

/// Probe `device` (`spec` is how the user named it; the host is read under `root`).
pub fn probe(device: &Device, spec: &str, root: &HostRoot) -> Result<DeviceInfo> {
    let r = crate::cuda::probe::probe(device, root)?;
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
        driver_cuda_version: r.driver_cuda_version.clone(),
        cudnn_version: r.cudnn_version.clone(),
        system_total_bytes: sys.map(|s| s.total_bytes).unwrap_or(0),
        system_available_bytes: sys.map(|s| s.available_bytes).unwrap_or(0),
        notes: r.notes.clone(),
    })
}

/// The unified-memory budget rule (docs/jetson.md): on a Jetson or an integrated GPU (`unified`)
/// a budget above 80 % of `MemTotal` (from `/proc/meminfo` under `root`) is refused (exit 2).
/// Off unified memory, and without a budget, nothing is read.
pub fn check_unified_budget(
    root: &HostRoot,
    unified: bool,
    budget: Option<MemBudget>,
) -> Result<()> {
    match budget {
        Some(b) if unified => UnifiedMemory::read(root.path())?.check_budget(b.bytes()),
        _ => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_bytes_and_print_as_the_flag() {
        let b = MemBudget::from_mib(6000).unwrap();
        assert_eq!(b.bytes(), 6000 << 20);
        assert_eq!(b.to_string(), "6000");
        assert!(b.allows(6000 << 20) && !b.allows((6000 << 20) + 1));
        assert_eq!(MemBudget::from_bytes(3 << 19).to_string(), "1.5");
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            (6000u64 << 20).to_string()
        );
        assert!(MemBudget::from_mib(u64::MAX).is_err());
    }

    #[test]
    fn budget_figures_round_trip_and_refuse_unknown_names() {
        for f in [
            BudgetFigure::ProcessRss,
            BudgetFigure::Device,
            BudgetFigure::System,
        ] {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{f}\""));
            assert_eq!(serde_json::from_str::<BudgetFigure>(&json).unwrap(), f);
        }
        assert!(serde_json::from_str::<BudgetFigure>("\"bogus\"").is_err());
    }
}
