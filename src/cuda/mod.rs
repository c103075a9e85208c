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
pub mod memory;
pub mod probe;
#[cfg(feature = "cuda")]
pub mod softmax;
#[cfg(feature = "cuda")]
pub mod strided_copy;
pub mod tuning;
pub mod workspace;

/// Open CUDA device `ordinal` the way vosbench runs it: one stream, so cudarc's per-buffer event
/// tracking (an event record and a stream wait around every kernel argument, there to order
/// work across streams) is switched off before any tensor exists. Every vosbench op, the cuDNN
/// engine and the fused attention included, runs on the device's one stream; tensors are never
/// shared with another stream. In a CPU build this is an error.
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
