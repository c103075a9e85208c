//! GPU memory accounting and control through the CUDA driver's stream-ordered memory pool.
//!
//! candle has no caching allocator: every tensor buffer is a `cuMemAllocAsync` from the device's
//! current memory pool (the default pool unless someone replaced it) and every drop a
//! `cuMemFreeAsync`. The pool's default release threshold is 0, so freed memory goes back to the
//! driver at each synchronisation and the next allocation pays for it again. [`DeviceMemory::for_device`]
//! therefore raises `CU_MEMPOOL_ATTR_RELEASE_THRESHOLD` to `u64::MAX` (freed memory stays in the
//! pool and is reused; [`DeviceMemory::trim`] gives it back on demand).
//!
//! What is measured ([`Accounting::MemoryPool`]):
//! - used = `CU_MEMPOOL_ATTR_USED_MEM_CURRENT`: bytes of live tensor allocations;
//! - reserved = `CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT`: bytes the pool holds from the driver;
//! - peaks = `USED_MEM_HIGH` / `RESERVED_MEM_HIGH`, kept by the driver between calls, so nothing
//!   is missed between samples; `reset_peak` sets them back to the current values.
//!
//! Each figure adds the same figure of the device's graph memory pool
//! (`cuDeviceGetGraphMemAttribute`), where the allocations made inside CUDA graphs live
//! ([`crate::cuda::graph`]); it is zero without graphs. The two pools' peaks may fall at different
//! moments, so their sum is an upper bound of the combined peak.
//!
//! Memory taken outside the pool (the CUDA context, kernels, cuBLAS/cuDNN handles and workspaces
//! allocated with `cuMemAlloc`) is not in these numbers; [`DeviceMemory::device_used_bytes`]
//! (`total - free` from `cuMemGetInfo`, which also counts other processes) is there for that.
//!
//! On a device without memory-pool support candle falls back to `cuMemAlloc`; then
//! ([`Accounting::DeviceInfo`]) used and reserved are both `total - free` from `cuMemGetInfo`, and
//! the peak is only the largest value seen by calls to this type since the last reset (no driver
//! high-water mark exists for it).
//!
//! In a build without the `cuda` feature [`DeviceMemory::for_device`] always returns `None` and no
//! value of the type can exist.

use crate::error::Result;
use candle_core::Device;

/// Where the numbers of a [`DeviceMemory`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Accounting {
    /// The driver's memory pool attributes (exact tensor bytes, driver-kept peaks).
    MemoryPool,
    /// `cuMemGetInfo` (whole-device usage, peaks only at the moments this type was asked).
    DeviceInfo,
}

/// One reading of the pool ([`DeviceMemory::sample`]), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolSample {
    pub used_bytes: u64,
    pub reserved_bytes: u64,
    pub peak_used_bytes: u64,
    pub peak_reserved_bytes: u64,
}

/// Memory accounting for one CUDA device; see the module documentation.
#[derive(Debug)]
pub struct DeviceMemory {
    inner: imp::Inner,
}

impl DeviceMemory {
    /// The accounting for `device`: `None` on CPU (and always in a build without `cuda`).
    /// On CUDA this also sets the pool's release threshold to `u64::MAX`. A device that reports
    /// memory-pool support but whose pool cannot be read falls back to [`Accounting::DeviceInfo`]
    /// and records why in [`DeviceMemory::fallback_reason`].
    pub fn for_device(device: &Device) -> Option<DeviceMemory> {
        imp::Inner::for_device(device, true).map(|inner| DeviceMemory { inner })
    }

    /// As [`DeviceMemory::for_device`], but leaves the pool's release threshold as it is (for
    /// observers such as the stage profiler, which must not change what they measure).
    pub fn attach(device: &Device) -> Option<DeviceMemory> {
        imp::Inner::for_device(device, false).map(|inner| DeviceMemory { inner })
    }

    /// The four pool figures at once: live and reserved bytes now and their high-water marks.
    pub fn sample(&self) -> Result<PoolSample> {
        Ok(PoolSample {
            used_bytes: self.used_bytes()?,
            reserved_bytes: self.reserved_bytes()?,
            peak_used_bytes: self.peak_used_bytes()?,
            peak_reserved_bytes: self.peak_reserved_bytes()?,
        })
    }

    /// Where the numbers come from.
    pub fn accounting(&self) -> Accounting {
        self.inner.accounting()
    }

    /// Why the memory pool is not used, when it is not.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.inner.fallback_reason()
    }

    /// Start a new peak window at the current values.
    pub fn reset_peak(&self) -> Result<()> {
        self.inner.reset_peak()
    }

    /// Peak bytes of live allocations since the last reset.
    pub fn peak_used_bytes(&self) -> Result<u64> {
        self.inner.peak_used_bytes()
    }

    /// Peak bytes held by the pool since the last reset.
    pub fn peak_reserved_bytes(&self) -> Result<u64> {
        self.inner.peak_reserved_bytes()
    }

    /// Bytes of live allocations now.
    pub fn used_bytes(&self) -> Result<u64> {
        self.inner.used_bytes()
    }

    /// Bytes held by the pool now.
    pub fn reserved_bytes(&self) -> Result<u64> {
        self.inner.reserved_bytes()
    }

    /// `total - free` of the whole device now (includes the context, library workspaces and
    /// other processes).
    pub fn device_used_bytes(&self) -> Result<u64> {
        self.inner.device_used_bytes()
    }

    /// `(free, total)` bytes of the device now.
    pub fn device_info(&self) -> Result<(u64, u64)> {
        self.inner.device_info()
    }

    /// Synchronise the device and give the pool's unused memory back to the driver.
    pub fn trim(&self) -> Result<()> {
        self.inner.trim()
    }

    /// Set how many unused bytes the pool may keep across synchronisations.
    pub fn set_release_threshold(&self, bytes: u64) -> Result<()> {
        self.inner.set_release_threshold(bytes)
    }

    /// The pool's release threshold now (`None` without a memory pool).
    pub fn release_threshold(&self) -> Result<Option<u64>> {
        self.inner.release_threshold()
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::Accounting;
    use crate::error::Result;
    use candle_core::Device;
    use std::convert::Infallible;

    /// Uninhabited: without CUDA there is no device memory to account.
    #[derive(Debug)]
    pub(super) struct Inner(Infallible);

    impl Inner {
        pub(super) fn for_device(_device: &Device, _raise_threshold: bool) -> Option<Inner> {
            None
        }
        pub(super) fn accounting(&self) -> Accounting {
            match self.0 {}
        }
        pub(super) fn fallback_reason(&self) -> Option<&str> {
            match self.0 {}
        }
        pub(super) fn reset_peak(&self) -> Result<()> {
            match self.0 {}
        }
        pub(super) fn peak_used_bytes(&self) -> Result<u64> {
            match self.0 {}
        }
        pub(super) fn peak_reserved_bytes(&self) -> Result<u64> {
            match self.0 {}
        }
        pub(super) fn used_bytes(&self) -> Result<u64> {
            match self.0 {}
        }
        pub(super) fn reserved_bytes(&self) -> Result<u64> {
            match self.0 {}
        }
        pub(super) fn device_used_bytes(&self) -> Result<u64> {
            match self.0 {}
        }
        pub(super) fn device_info(&self) -> Result<(u64, u64)> {
            match self.0 {}
        }
        pub(super) fn trim(&self) -> Result<()> {
            match self.0 {}
        }
        pub(super) fn set_release_threshold(&self, _bytes: u64) -> Result<()> {
            match self.0 {}
        }
        pub(super) fn release_threshold(&self) -> Result<Option<u64>> {
            match self.0 {}
        }
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use super::Accounting;
    use crate::error::{Error, Result};
    use candle_core::Device;
    use cudarc::driver::sys::CUgraphMem_attribute as GraphAttr;
    use cudarc::driver::sys::CUmemPool_attribute as Attr;
    use cudarc::driver::{result, sys, CudaContext, DriverError};
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn driver_err(what: &str, e: DriverError) -> Error {
        Error::Other(format!("CUDA {what}: {e}"))
    }

    /// The pool handle is a driver object that lives as long as the device; we only read and
    /// set its attributes.
    #[derive(Debug)]
    struct Pool(sys::CUmemoryPool);

    // SAFETY: a CUmemoryPool handle is a process-wide driver object usable from any thread.
    unsafe impl Send for Pool {}
    unsafe impl Sync for Pool {}

    #[derive(Debug)]
    pub(super) struct Inner {
        ctx: Arc<CudaContext>,
        pool: Option<Pool>,
        fallback: Option<String>,
        /// DeviceInfo accounting: the largest `total - free` seen since the last reset.
        seen_peak: AtomicU64,
    }

    impl Inner {
        pub(super) fn for_device(device: &Device, raise_threshold: bool) -> Option<Inner> {
            let Device::Cuda(cuda) = device else {
                return None;
            };
            let ctx = Arc::clone(cuda.cuda_stream().context());
            let (pool, fallback) = if !ctx.has_async_alloc() {
                (
                    None,
                    Some(
                        "the device has no stream-ordered memory pool (cuMemAllocAsync); \
                         used memory is total - free from cuMemGetInfo"
                            .to_string(),
                    ),
                )
            } else {
                match open_pool(&ctx, raise_threshold) {
                    Ok(pool) => (Some(pool), None),
                    Err(e) => (
                        None,
                        Some(format!(
                            "the memory pool could not be used ({e}); used memory is total - free from cuMemGetInfo"
                        )),
                    ),
                }
            };
            let inner = Inner {
                ctx,
                pool,
                fallback,
                seen_peak: AtomicU64::new(0),
            };
            // Start the DeviceInfo window at the current value; a failure here shows up again
            // (as an error) at the first real query.
            if inner.pool.is_none() {
                if let Ok(used) = inner.device_used_bytes() {
                    inner.seen_peak.store(used, Ordering::Relaxed);
                }
            }
            Some(inner)
        }

        pub(super) fn accounting(&self) -> Accounting {
            if self.pool.is_some() {
                Accounting::MemoryPool
            } else {
                Accounting::DeviceInfo
            }
        }

        pub(super) fn fallback_reason(&self) -> Option<&str> {
            self.fallback.as_deref()
        }

        fn bind(&self) -> Result<()> {
            self.ctx
                .bind_to_thread()
                .map_err(|e| driver_err("bind context", e))
        }

        fn get(&self, pool: &Pool, attr: Attr) -> Result<u64> {
            self.bind()?;
            let mut v: u64 = 0;
            // SAFETY: the pool is the device's live current pool; the attributes read here are
            // all cuuint64_t.
            unsafe {
                result::mem_pool::get_attribute(pool.0, attr, &mut v as *mut u64 as *mut c_void)
            }
            .map_err(|e| driver_err(&format!("read pool attribute {attr:?}"), e))?;
            Ok(v)
        }

        fn set(&self, pool: &Pool, attr: Attr, value: u64) -> Result<()> {
            self.bind()?;
            let mut v = value;
            // SAFETY: as in `get`; the attributes written here are cuuint64_t.
            unsafe {
                result::mem_pool::set_attribute(pool.0, attr, &mut v as *mut u64 as *mut c_void)
            }
            .map_err(|e| driver_err(&format!("set pool attribute {attr:?}"), e))
        }

        pub(super) fn device_info(&self) -> Result<(u64, u64)> {
            let (free, total) = self
                .ctx
                .mem_get_info()
                .map_err(|e| driver_err("cuMemGetInfo", e))?;
            Ok((free as u64, total as u64))
        }

        pub(super) fn device_used_bytes(&self) -> Result<u64> {
            let (free, total) = self.device_info()?;
            Ok(total.saturating_sub(free))
        }

        fn observe(&self) -> Result<u64> {
            let used = self.device_used_bytes()?;
            self.seen_peak.fetch_max(used, Ordering::Relaxed);
            Ok(used)
        }

        /// A figure of the device's graph memory pool.
        fn graph(&self, attr: GraphAttr) -> Result<u64> {
            self.bind()?;
            let mut v: u64 = 0;
            // SAFETY: cu_device() is the context's device; the graph-memory attributes are
            // cuuint64_t.
            unsafe {
                sys::cuDeviceGetGraphMemAttribute(
                    self.ctx.cu_device(),
                    attr,
                    &mut v as *mut u64 as *mut c_void,
                )
            }
            .result()
            .map_err(|e| driver_err(&format!("read graph memory attribute {attr:?}"), e))?;
            Ok(v)
        }

        fn reset_graph_peaks(&self) -> Result<()> {
            self.bind()?;
            for attr in [
                GraphAttr::CU_GRAPH_MEM_ATTR_USED_MEM_HIGH,
                GraphAttr::CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH,
            ] {
                let mut v: u64 = 0;
                // SAFETY: as in `graph`; the high-water marks accept 0 (restart from current).
                unsafe {
                    sys::cuDeviceSetGraphMemAttribute(
                        self.ctx.cu_device(),
                        attr,
                        &mut v as *mut u64 as *mut c_void,
                    )
                }
                .result()
                .map_err(|e| driver_err(&format!("reset graph memory attribute {attr:?}"), e))?;
            }
            Ok(())
        }

        pub(super) fn reset_peak(&self) -> Result<()> {
            match &self.pool {
                // The driver accepts only 0 for the high-water marks and then restarts them
                // from the current value.
                Some(pool) => {
                    self.set(pool, Attr::CU_MEMPOOL_ATTR_USED_MEM_HIGH, 0)?;
                    self.set(pool, Attr::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, 0)?;
                    // Without graphs the graph pool is empty and its marks stay 0.
                    if self.graph(GraphAttr::CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH)? > 0 {
                        self.reset_graph_peaks()?;
                    }
                    Ok(())
                }
                None => {
                    let used = self.device_used_bytes()?;
                    self.seen_peak.store(used, Ordering::Relaxed);
                    Ok(())
                }
            }
        }

        pub(super) fn peak_used_bytes(&self) -> Result<u64> {
            match &self.pool {
                Some(pool) => Ok(self.get(pool, Attr::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?
                    + self.graph(GraphAttr::CU_GRAPH_MEM_ATTR_USED_MEM_HIGH)?),
                None => {
                    self.observe()?;
                    Ok(self.seen_peak.load(Ordering::Relaxed))
                }
            }
        }

        pub(super) fn peak_reserved_bytes(&self) -> Result<u64> {
            match &self.pool {
                Some(pool) => Ok(self.get(pool, Attr::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH)?
                    + self.graph(GraphAttr::CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH)?),
                None => self.peak_used_bytes(),
            }
        }

        pub(super) fn used_bytes(&self) -> Result<u64> {
            match &self.pool {
                Some(pool) => Ok(self.get(pool, Attr::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?
                    + self.graph(GraphAttr::CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT)?),
                None => self.observe(),
            }
        }

        pub(super) fn reserved_bytes(&self) -> Result<u64> {
            match &self.pool {
                Some(pool) => Ok(self.get(pool, Attr::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)?
                    + self.graph(GraphAttr::CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT)?),
                None => self.observe(),
            }
        }

        pub(super) fn trim(&self) -> Result<()> {
            self.ctx
                .synchronize()
                .map_err(|e| driver_err("synchronize", e))?;
            if let Some(pool) = &self.pool {
                self.bind()?;
                // SAFETY: the pool is the device's live current pool.
                unsafe { result::mem_pool::trim_to(pool.0, 0) }
                    .map_err(|e| driver_err("cuMemPoolTrimTo", e))?;
                // Only when the device's graph pool holds memory (some CUDA graph ran).
                if self.graph(GraphAttr::CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT)? > 0 {
                    // SAFETY: cu_device() is the context's device.
                    unsafe { sys::cuDeviceGraphMemTrim(self.ctx.cu_device()) }
                        .result()
                        .map_err(|e| driver_err("cuDeviceGraphMemTrim", e))?;
                }
            }
            Ok(())
        }

        pub(super) fn set_release_threshold(&self, bytes: u64) -> Result<()> {
            match &self.pool {
                Some(pool) => self.set(pool, Attr::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, bytes),
                None => Err(Error::Other(format!(
                    "cannot set a release threshold: {}",
                    self.fallback.as_deref().unwrap_or("no memory pool")
                ))),
            }
        }

        pub(super) fn release_threshold(&self) -> Result<Option<u64>> {
            match &self.pool {
                Some(pool) => self
                    .get(pool, Attr::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)
                    .map(Some),
                None => Ok(None),
            }
        }
    }

    /// The device's current pool (where cuMemAllocAsync allocates), with the release threshold
    /// raised so freed memory is kept for reuse when `raise_threshold`.
    fn open_pool(ctx: &Arc<CudaContext>, raise_threshold: bool) -> Result<Pool> {
        ctx.bind_to_thread()
            .map_err(|e| driver_err("bind context", e))?;
        // SAFETY: cu_device() is a device handle obtained from the driver by the context.
        let raw = unsafe { result::device::get_mem_pool(ctx.cu_device()) }
            .map_err(|e| driver_err("cuDeviceGetMemPool", e))?;
        let pool = Pool(raw);
        if !raise_threshold {
            return Ok(pool);
        }
        let mut v = u64::MAX;
        // SAFETY: RELEASE_THRESHOLD is a cuuint64_t attribute of a live pool.
        unsafe {
            result::mem_pool::set_attribute(
                pool.0,
                Attr::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                &mut v as *mut u64 as *mut c_void,
            )
        }
        .map_err(|e| driver_err("set the pool release threshold", e))?;
        Ok(pool)
    }
}
