//! The convolution workspace arena: the scratch memory cuDNN algorithms ask for, one buffer per
//! device (and thread), grown to the largest workspace a chosen algorithm needs and reused by
//! every convolution after it, instead of a fresh allocation per call.
//!
//! This is process-wide on purpose: it is memory of a device, not a setting. It decides nothing
//! about how anything runs (the workspace limit that bounds it belongs to each model's
//! [`crate::cuda::tuning::ConvTuner`]); every model on the device borrows it for the duration of
//! one launch on the device's one stream. cuDNN handles are not thread-safe and neither is this
//! buffer's reuse, so there is one per thread and device.
//!
//! A CUDA graph that captured a convolution holds the arena's address. Whenever the arena moves
//! (it grows, or [`release`] drops it) its [`generation`] goes up, and
//! [`crate::cuda::graph::GraphedFn`] captures again when the generation it recorded at is gone.
//! The generation counts moves of every thread's arena together (a move anywhere recaptures
//! everywhere, which is rare and only costs one eager frame).

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many times an arena has moved so far in this process.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

fn moved() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[cfg(feature = "cudnn")]
thread_local! {
    static ARENAS: std::cell::RefCell<
        std::collections::HashMap<candle_core::cuda_backend::DeviceId, cudarc::driver::CudaSlice<u8>>,
    > = std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Drop this thread's arenas (the next convolution allocates again); counts as a move.
pub fn release() {
    moved();
    #[cfg(feature = "cudnn")]
    ARENAS.with(|a| a.borrow_mut().clear());
}

/// Run `f` with a workspace of at least `bytes` on `device` (a null pointer when `bytes` is 0),
/// growing the arena first when it is smaller. `f` must not call back into this module.
#[cfg(feature = "cudnn")]
pub fn with_workspace<R>(
    device: candle_core::cuda_backend::DeviceId,
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    bytes: usize,
    f: impl FnOnce(*mut std::ffi::c_void) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    use cudarc::driver::DevicePtrMut;
    if bytes == 0 {
        return f(std::ptr::null_mut());
    }
    ARENAS.with(|a| {
        let mut arenas = a.borrow_mut();
        if arenas.get(&device).is_none_or(|s| s.len() < bytes) {
            moved();
            // Free the old buffer before asking for the larger one.
            arenas.remove(&device);
            // SAFETY: scratch memory; cuDNN writes before it reads.
            let slice = unsafe { stream.alloc::<u8>(bytes) }.map_err(|e| {
                candle_core::Error::Msg(format!(
                    "cudnn workspace of {} MiB: {e:?}",
                    bytes.div_ceil(1 << 20)
                ))
            })?;
            arenas.insert(device, slice);
        }
        let Some(arena) = arenas.get_mut(&device) else {
            candle_core::bail!("cudnn workspace: the arena vanished")
        };
        let (ptr, _guard) = arena.device_ptr_mut(stream);
        f(ptr as *mut std::ffi::c_void)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn releasing_counts_as_a_move() {
        let g = super::generation();
        super::release();
        assert!(super::generation() > g);
    }
}
