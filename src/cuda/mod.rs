//! CUDA device probe, memory control and the convolution engine. Everything that touches the
//! driver is behind the `cuda` feature (cuDNN behind `cudnn`); a CPU build compiles the same API,
//! reports the host only, never has device memory, and keeps an empty tuning table.

#[cfg(feature = "cuda")]
pub mod bias_add;
#[cfg(feature = "cudnn")]
pub mod cudnn_conv;
#[cfg(feature = "cuda")]
pub mod flash_attn;
pub mod graph;
#[cfg(feature = "cuda")]
pub mod kernels;
#[cfg(feature = "cuda")]
pub mod layer_norm2d;
#[cfg(feature = "cuda")]
pub mod max_pool;
pub mod memory;
pub mod probe;
#[cfg(feature = "cuda")]
pub mod rope;
#[cfg(feature = "cuda")]
pub mod softmax;
#[cfg(feature = "cuda")]
pub mod strided_copy;
pub mod tuning;
pub mod workspace;

/// Devices this process has opened through [`open_device`] (a count for reports and tests; it
/// decides nothing). The benchmark's launcher records its own count, which must stay 0.
static DEVICES_OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many devices this process has opened through [`open_device`] so far.
pub fn devices_opened() -> usize {
    DEVICES_OPENED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Open the device a `--device` flag names: `cpu`, `cuda` or `cuda:N`. Every subcommand opens
/// its device here (and only here), so [`devices_opened`] counts every open of the process, the
/// CPU included.
pub fn open_device(spec: &str) -> crate::error::Result<candle_core::Device> {
    use crate::error::Error;
    let spec = spec.trim();
    let bad = || Error::Input(format!("bad device '{spec}': expected cpu, cuda or cuda:N"));
    let ordinal = match spec {
        "cpu" => None,
        "cuda" => Some(0),
        s => Some(
            s.strip_prefix("cuda:")
                .ok_or_else(bad)?
                .parse::<usize>()
                .map_err(|_| bad())?,
        ),
    };
    let Some(ordinal) = ordinal else {
        DEVICES_OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(candle_core::Device::Cpu);
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::Input(format!(
            "device '{spec}' needs a CUDA build (cargo build --release --features cudnn)"
        )));
    }
    DEVICES_OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dev = open_cuda(ordinal)
        .map_err(|e| Error::Input(format!("cannot open CUDA device {ordinal}: {e}")))?;
    // A cuDNN older than the bindings: a clear error now rather than a failed call later.
    #[cfg(feature = "cudnn")]
    tuning::check_cudnn_version(cudarc::cudnn::result::get_version()).map_err(Error::Input)?;
    Ok(dev)
}

/// Open CUDA device `ordinal` the way vosbench runs it: one stream, so cudarc's per-buffer event
/// tracking (an event record and a stream wait around every kernel argument, there to order
/// work across streams) is switched off before any tensor exists. Every vosbench op, the cuDNN
/// engine and the fused attention included, runs on the device's one stream; tensors are never
/// shared with another stream. In a CPU build this is an error. Subcommands call
/// [`open_device`], which counts the open.
pub fn open_cuda(ordinal: usize) -> candle_core::Result<candle_core::Device> {
    #[cfg(feature = "cuda")]
    {
        use candle_core::backend::BackendDevice;
        let dev = candle_core::CudaDevice::new(ordinal)?;
        // SAFETY: see above: a single stream, no cross-stream use of any buffer.
        unsafe { dev.disable_event_tracking() };
        Ok(candle_core::Device::Cuda(dev))
    }
    #[cfg(not(feature = "cuda"))]
    {
        candle_core::bail!("CUDA device {ordinal} needs a CUDA build")
    }
}
