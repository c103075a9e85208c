//! What the benchmark runs on: the GPU (through the CUDA driver API) and the host (procfs).
//!
//! Every field is either measured or `None`: a CPU device reports the host part only, and a
//! field the driver or the platform cannot give stays empty with a note saying why.

use crate::error::Result;
use crate::host::jetson::JetsonInfo;
use crate::host::HostRoot;
use candle_core::Device;
use std::path::PathBuf;

/// The host: CPU, cores, RAM, and whether it is an NVIDIA Jetson (Tegra) board.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostReport {
    pub os: String,
    pub arch: String,
    /// `model name` from /proc/cpuinfo (x86) or the device-tree model (ARM boards).
    pub cpu_model: Option<String>,
    /// Logical CPUs the process may use (affinity-aware).
    pub available_cores: Option<usize>,
    /// Logical CPUs of the machine (`processor` lines of /proc/cpuinfo).
    pub logical_cores: Option<usize>,
    pub total_ram_bytes: Option<u64>,
    pub available_ram_bytes: Option<u64>,
    /// The Jetson/Tegra identification when the board is one (`/etc/nv_tegra_release` or a
    /// device-tree model naming Jetson/Tegra).
    pub jetson: Option<String>,
    /// The Jetson environment (module, L4T / JetPack, nvpmodel mode, jetson_clocks, GPU and
    /// EMC clocks) when the board is one ([`crate::host::jetson::detect`]).
    pub jetson_info: Option<JetsonInfo>,
    /// Where `/etc`, `/proc` and `/sys` were read (`/`, or a fake tree given by `--host-root`).
    pub host_root: PathBuf,
}

/// A device report; see [`probe`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceReport {
    /// `cpu` or `cuda`.
    pub kind: String,
    /// The CUDA ordinal.
    pub ordinal: Option<usize>,
    /// The device name (`cuDeviceGetName`; for CPU the CPU model).
    pub name: Option<String>,
    /// `major.minor`.
    pub compute_capability: Option<String>,
    pub multiprocessors: Option<i32>,
    /// Device memory from `cuMemGetInfo`.
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// The GPU shares the host's RAM (`CU_DEVICE_ATTRIBUTE_INTEGRATED`, or a Jetson board):
    /// then device and host budgets are one budget. Always false for a CPU device.
    pub unified_memory: bool,
    /// `CU_DEVICE_ATTRIBUTE_INTEGRATED` as the driver reports it.
    pub integrated: Option<bool>,
    /// Whether candle allocates through the stream-ordered memory pool (`cuMemAllocAsync`).
    pub memory_pools: Option<bool>,
    /// The pool's release threshold after [`crate::cuda::memory::DeviceMemory`] set it.
    pub pool_release_threshold: Option<u64>,
    /// `cuDriverGetVersion`, as `major.minor` of the newest CUDA the driver supports.
    pub driver_cuda_version: Option<String>,
    /// `cudnnGetVersion` (cudnn builds only).
    pub cudnn_version: Option<String>,
    /// Whether candle lets cuBLAS use TF32 for f32 matmuls (off by default, unlike PyTorch
    /// convolutions).
    pub tf32_matmul: Option<bool>,
    /// Features this binary was built with.
    pub build_features: Vec<String>,
    pub host: HostReport,
    /// Anything that could not be read, and why.
    pub notes: Vec<String>,
}

/// Probe `device` and the host (read under `root`).
pub fn probe(device: &Device, root: &HostRoot) -> Result<DeviceReport> {
    let mut notes = Vec::new();
    let host = probe_host(root, &mut notes);
    let mut build_features = Vec::new();
    if cfg!(feature = "cuda") {
        build_features.push("cuda".to_string());
    }
    if cfg!(feature = "cudnn") {
        build_features.push("cudnn".to_string());
    }
    let mut report = DeviceReport {
        kind: "cpu".into(),
        ordinal: None,
        name: host.cpu_model.clone(),
        compute_capability: None,
        multiprocessors: None,
        total_bytes: None,
        free_bytes: None,
        unified_memory: false,
        integrated: None,
        memory_pools: None,
        pool_release_threshold: None,
        driver_cuda_version: None,
        cudnn_version: None,
        tf32_matmul: None,
        build_features,
        host,
        notes: Vec::new(),
    };
    match device {
        Device::Cpu => {}
        Device::Cuda(_) => cuda::fill(device, &mut report, &mut notes)?,
        other => {
            return Err(crate::Error::Input(format!(
                "probe supports cpu and cuda devices, not {:?}",
                other.location()
            )))
        }
    }
    report.notes = notes;
    Ok(report)
}

/// The first `key : value` line of /proc/cpuinfo with this key.
pub fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Jetson identification from the contents of `/etc/nv_tegra_release` and the device-tree model
/// (either may be absent).
pub fn detect_jetson(nv_tegra_release: Option<&str>, dt_model: Option<&str>) -> Option<String> {
    let model = dt_model
        .map(|m| m.trim_end_matches('\0').trim().to_string())
        .filter(|m| !m.is_empty());
    let model_is_tegra = model.as_deref().is_some_and(|m| {
        let l = m.to_ascii_lowercase();
        l.contains("jetson") || l.contains("tegra") || l.contains("orin")
    });
    let release = nv_tegra_release
        .and_then(|r| r.lines().next())
        .map(|l| l.trim().trim_start_matches('#').trim().to_string())
        .filter(|l| !l.is_empty());
    match (model_is_tegra, model, release) {
        (true, Some(m), Some(r)) => Some(format!("{m} ({r})")),
        (true, Some(m), None) => Some(m),
        (false, _, Some(r)) => Some(r),
        _ => None,
    }
}

fn probe_host(root: &HostRoot, notes: &mut Vec<String>) -> HostReport {
    let cpuinfo = root.read("/proc/cpuinfo");
    let dt_model = root.read("/proc/device-tree/model");
    let jetson = detect_jetson(
        root.read("/etc/nv_tegra_release").as_deref(),
        dt_model.as_deref(),
    );
    let jetson_info = crate::host::jetson::detect(root.path());
    let cpu_model = cpuinfo
        .as_deref()
        .and_then(|c| cpuinfo_field(c, "model name").or_else(|| cpuinfo_field(c, "Hardware")))
        .or_else(|| {
            dt_model
                .as_deref()
                .map(|m| m.trim_end_matches('\0').trim().to_string())
                .filter(|m| !m.is_empty())
        });
    if cpu_model.is_none() {
        notes.push("CPU model: not found in /proc/cpuinfo or the device tree".into());
    }
    let logical_cores = cpuinfo.as_deref().map(|c| {
        c.lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count()
    });
    let available_cores = match std::thread::available_parallelism() {
        Ok(n) => Some(n.get()),
        Err(e) => {
            notes.push(format!("available cores: {e}"));
            None
        }
    };
    let meminfo = root.join("/proc/meminfo");
    let ram = std::fs::read_to_string(&meminfo)
        .map_err(|e| crate::Error::io(&meminfo, e))
        .and_then(|t| crate::host::procfs::parse_meminfo(&t));
    let (total_ram_bytes, available_ram_bytes) = match ram {
        Ok(m) => (Some(m.total_bytes), Some(m.available_bytes)),
        Err(e) => {
            notes.push(format!("host RAM: {e}"));
            (None, None)
        }
    };
    HostReport {
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpu_model,
        available_cores,
        logical_cores: logical_cores.filter(|&n| n > 0),
        total_ram_bytes,
        available_ram_bytes,
        jetson,
        jetson_info,
        host_root: root.path().to_path_buf(),
    }
}

/// `cuDriverGetVersion`'s integer (1000 * major + 10 * minor) as `major.minor`.
pub fn format_cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// `cudnnGetVersion`'s integer as `major.minor.patch` (cuDNN 9 uses major * 10000 + minor * 100 +
/// patch, cuDNN 8 and older major * 1000 + minor * 100 + patch).
pub fn format_cudnn_version(v: usize) -> String {
    if v >= 90000 {
        format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::DeviceReport;
    use crate::error::{Error, Result};
    use candle_core::Device;

    pub(super) fn fill(_: &Device, _: &mut DeviceReport, _: &mut Vec<String>) -> Result<()> {
        Err(Error::Input(
            "probing a CUDA device needs a CUDA build (--features cuda or cudnn)".into(),
        ))
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::{format_cuda_version, DeviceReport};
    use crate::cuda::memory::DeviceMemory;
    use crate::error::{Error, Result};
    use candle_core::Device;
    use cudarc::driver::sys;
    use cudarc::driver::sys::CUdevice_attribute as A;

    pub(super) fn fill(
        device: &Device,
        report: &mut DeviceReport,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let Device::Cuda(cuda) = device else {
            return Err(Error::Other("not a CUDA device".into()));
        };
        let stream = cuda.cuda_stream();
        let ctx = stream.context();
        report.kind = "cuda".into();
        report.ordinal = Some(ctx.ordinal());
        let err =
            |what: &str, e: cudarc::driver::DriverError| Error::Other(format!("CUDA {what}: {e}"));
        report.name = Some(ctx.name().map_err(|e| err("device name", e))?);
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| err("compute capability", e))?;
        report.compute_capability = Some(format!("{major}.{minor}"));
        match ctx.attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT) {
            Ok(n) => report.multiprocessors = Some(n),
            Err(e) => notes.push(format!("multiprocessor count: {e}")),
        }
        let (free, total) = ctx.mem_get_info().map_err(|e| err("cuMemGetInfo", e))?;
        report.free_bytes = Some(free as u64);
        report.total_bytes = Some(total as u64);
        match ctx.attribute(A::CU_DEVICE_ATTRIBUTE_INTEGRATED) {
            Ok(v) => report.integrated = Some(v != 0),
            Err(e) => notes.push(format!("integrated attribute: {e}")),
        }
        report.unified_memory = report.integrated == Some(true)
            || report.host.jetson.is_some()
            || report.host.jetson_info.is_some();
        report.memory_pools = Some(ctx.has_async_alloc());
        match DeviceMemory::for_device(device) {
            Some(mem) => {
                if let Some(why) = mem.fallback_reason() {
                    notes.push(format!("memory accounting: {why}"));
                }
                match mem.release_threshold() {
                    Ok(t) => report.pool_release_threshold = t,
                    Err(e) => notes.push(format!("pool release threshold: {e}")),
                }
            }
            None => notes.push("memory accounting: unavailable for this device".into()),
        }
        let mut v: std::ffi::c_int = 0;
        // SAFETY: cuDriverGetVersion writes one int and needs no context.
        match unsafe { sys::cuDriverGetVersion(&mut v) }.result() {
            Ok(()) => report.driver_cuda_version = Some(format_cuda_version(v)),
            Err(e) => notes.push(format!("driver version: {e}")),
        }
        report.tf32_matmul = Some(candle_core::cuda::gemm_reduced_precision_f32());
        #[cfg(feature = "cudnn")]
        {
            let v = cudarc::cudnn::result::get_version();
            report.cudnn_version = Some(super::format_cudnn_version(v));
        }
        Ok(())
    }
}
