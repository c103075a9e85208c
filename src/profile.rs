//! Opt-in stage timing for finding where a frame's time goes: set `VOSBENCH_PROFILE=1` and every
//! instrumented stage synchronizes its device before and after it runs and adds its wall time to
//! a process-wide table, printed to stderr when the CLI exits. `VOSBENCH_PROFILE=host` skips the
//! closing synchronization, so a stage's time is what the host spends issuing it. Off (the default), a stage costs
//! one relaxed atomic load and nothing is synchronized, so benchmark timings are unaffected.
//!
//! On a CUDA device with a memory pool the table also says which stages raise the pool's
//! high-water marks: for each stage, by how many MiB its calls raised the reserved peak (memory
//! the pool took from the driver) and the live-tensor peak, summed over its calls. A stage that
//! never sets a new peak shows 0 even if it allocates a lot: the columns say where the process
//! peak is made, not how much a stage uses.

use candle_core::Device;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// 0 = not read yet, 1 = off, 2 = on (device time), 3 = host (enqueue time).
static ENABLED: AtomicU8 = AtomicU8::new(0);
static TABLE: Mutex<BTreeMap<&'static str, Entry>> = Mutex::new(BTreeMap::new());
/// The pool of the first CUDA device profiled (attached without changing its settings).
static POOL: Mutex<Option<crate::cuda::memory::DeviceMemory>> = Mutex::new(None);

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    time: Duration,
    calls: u64,
    /// Bytes by which this stage's calls raised the pool's reserved / live high-water marks.
    reserved_growth: u64,
    used_growth: u64,
}

/// The pool's (live, reserved) high-water marks now; None off CUDA or without a pool. A driver
/// failure to read them is an error.
fn pool_peaks(device: &Device) -> candle_core::Result<Option<(u64, u64)>> {
    if !matches!(device, Device::Cuda(_)) {
        return Ok(None);
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.is_none() {
        *pool = crate::cuda::memory::DeviceMemory::attach(device);
    }
    let Some(m) = pool.as_ref() else {
        return Ok(None);
    };
    if m.accounting() != crate::cuda::memory::Accounting::MemoryPool {
        return Ok(None);
    }
    let read = |r: crate::error::Result<u64>| r.map_err(|e| candle_core::Error::Msg(e.to_string()));
    Ok(Some((
        read(m.peak_used_bytes())?,
        read(m.peak_reserved_bytes())?,
    )))
}

fn mode() -> u8 {
    match ENABLED.load(Ordering::Relaxed) {
        0 => {
            let m = match std::env::var("VOSBENCH_PROFILE").as_deref() {
                Err(_) | Ok("") | Ok("0") => 1,
                Ok("host") => 3,
                Ok(_) => 2,
            };
            ENABLED.store(m, Ordering::Relaxed);
            m
        }
        m => m,
    }
}

/// Whether `VOSBENCH_PROFILE` is set to something other than `0` or empty.
pub fn enabled() -> bool {
    mode() > 1
}

/// `VOSBENCH_PROFILE=host`: a stage starts on an idle device and its time ends when the host has
/// issued its work, without waiting for the device. Where this equals the synchronized time, the
/// stage is bound by the host issuing kernels, not by the device running them.
pub fn host_only() -> bool {
    mode() == 3
}

/// Run `f` as stage `name` on `device` (timed only when profiling is on). Errors pass through
/// unchanged.
pub fn stage<T, E: From<candle_core::Error>>(
    name: &'static str,
    device: &Device,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if !enabled() {
        return f();
    }
    device.synchronize()?;
    let before = pool_peaks(device)?;
    let t = Instant::now();
    let out = f()?;
    if !host_only() {
        device.synchronize()?;
    }
    let dt = t.elapsed();
    let after = match before {
        Some(_) => pool_peaks(device)?,
        None => None,
    };
    let mut table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let e = table.entry(name).or_default();
    e.time += dt;
    e.calls += 1;
    if let (Some((u0, r0)), Some((u1, r1))) = (before, after) {
        e.used_growth += u1.saturating_sub(u0);
        e.reserved_growth += r1.saturating_sub(r0);
    }
    Ok(out)
}

/// The table as text: stage, calls, total and mean milliseconds, and on CUDA the MiB by which
/// the stage raised the pool's reserved and live peaks (stages nest: a stage's figures include
/// the stages inside it).
pub fn report() -> Option<String> {
    let table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if table.is_empty() {
        return None;
    }
    let memory = POOL
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|m| m.accounting() == crate::cuda::memory::Accounting::MemoryPool);
    let mut s = format!(
        "{:<28} {:>7} {:>11} {:>10}",
        "stage", "calls", "total ms", "mean ms"
    );
    if memory {
        s.push_str(&format!(
            " {:>13} {:>13}",
            "+peak res MiB", "+peak live MiB"
        ));
    }
    s.push('\n');
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for (name, e) in table.iter() {
        let ms = e.time.as_secs_f64() * 1e3;
        s.push_str(&format!(
            "{name:<28} {:>7} {ms:>11.1} {:>10.3}",
            e.calls,
            ms / e.calls.max(1) as f64
        ));
        if memory {
            s.push_str(&format!(
                " {:>13.1} {:>14.1}",
                mib(e.reserved_growth),
                mib(e.used_growth)
            ));
        }
        s.push('\n');
    }
    Some(s)
}
