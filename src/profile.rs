//! Opt-in stage timing for finding where a frame's time goes: set `VOSBENCH_PROFILE=1` and every
//! instrumented stage synchronizes its device before and after it runs and adds its wall time to
//! a process-wide table, printed to stderr when the CLI exits. `VOSBENCH_PROFILE=host` skips the
//! closing synchronization, so a stage's time is what the host spends issuing it. Off (the default), a stage costs
//! one relaxed atomic load and nothing is synchronized, so benchmark timings are unaffected.

use candle_core::Device;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// 0 = not read yet, 1 = off, 2 = on (device time), 3 = host (enqueue time).
static ENABLED: AtomicU8 = AtomicU8::new(0);
static TABLE: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

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
    let t = Instant::now();
    let out = f()?;
    if !host_only() {
        device.synchronize()?;
    }
    let dt = t.elapsed();
    let mut table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let e = table.entry(name).or_insert((Duration::ZERO, 0));
    e.0 += dt;
    e.1 += 1;
    Ok(out)
}

/// The table as text: stage, calls, total and mean milliseconds (stages nest: a stage's time
/// includes the stages inside it).
pub fn report() -> Option<String> {
    let table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if table.is_empty() {
        return None;
    }
    let mut s = format!(
        "{:<28} {:>7} {:>11} {:>10}\n",
        "stage", "calls", "total ms", "mean ms"
    );
    for (name, (d, n)) in table.iter() {
        let ms = d.as_secs_f64() * 1e3;
        s.push_str(&format!(
            "{name:<28} {n:>7} {ms:>11.1} {:>10.3}\n",
            ms / (*n).max(1) as f64
        ));
    }
    Some(s)
}
