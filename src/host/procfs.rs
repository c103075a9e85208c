//! Linux procfs readings: the process's resident set (current and peak), the machine's used
//! memory, and how long this process has existed.
//!
//! - Process RSS comes from `/proc/self/status` (`VmRSS`, in kB). The peak combines a background
//!   sampler (every `interval`) with the kernel's own high-water mark `VmHWM`, which catches
//!   spikes shorter than the sampling interval. `VmHWM` covers the whole process lifetime unless
//!   it is reset by writing `5` to `/proc/self/clear_refs` (Linux 4.0+); it is used only while such
//!   a reset has succeeded, so a peak never includes memory from before `start`/`reset_peak`.
//! - System memory comes from `/proc/meminfo`: used = `MemTotal - MemAvailable`. That is what
//!   matters on unified-memory devices (Jetson), where the GPU allocates from the same RAM.
//! - The process age is `/proc/uptime` minus the start time in `/proc/self/stat`.
//!
//! On other operating systems nothing is measured: [`system_memory`] and [`try_current_rss_bytes`]
//! return an error saying so, [`current_rss_bytes`] returns 0, [`host_memory_supported`] is
//! false, [`process_age_s`] is `None`, and the sampler records that error instead of numbers.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The machine's memory, in bytes, as `/proc/meminfo` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SystemMemory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`: what can be allocated without swapping.
    pub available_bytes: u64,
    /// `MemTotal - MemAvailable`.
    pub used_bytes: u64,
}

/// Whether this platform's host memory can be measured (Linux procfs).
pub fn host_memory_supported() -> bool {
    cfg!(target_os = "linux")
}

fn unsupported(what: &str) -> Error {
    Error::Other(format!(
        "{what} is only measured on Linux (procfs); this platform is unsupported"
    ))
}

/// Read a `Key:   <number> kB` field of a procfs file (status, meminfo), in bytes.
pub fn parse_kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

fn read_proc(path: &str) -> Result<String> {
    if !host_memory_supported() {
        return Err(unsupported("host memory"));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

fn field(text: &str, key: &str, path: &str) -> Result<u64> {
    parse_kb_field(text, key).ok_or_else(|| Error::Other(format!("{path}: no readable {key} line")))
}

/// The process's resident set size now (`VmRSS`), in bytes.
pub fn try_current_rss_bytes() -> Result<u64> {
    let text = read_proc("/proc/self/status")?;
    field(&text, "VmRSS", "/proc/self/status")
}

/// The process's resident set size now, in bytes; 0 when it cannot be read (see
/// [`host_memory_supported`] and [`try_current_rss_bytes`] for the reason).
pub fn current_rss_bytes() -> u64 {
    try_current_rss_bytes().unwrap_or(0)
}

/// The kernel's peak resident set size of this process (`VmHWM`), in bytes.
pub fn try_rss_high_water_mark_bytes() -> Result<u64> {
    let text = read_proc("/proc/self/status")?;
    field(&text, "VmHWM", "/proc/self/status")
}

/// Reset the kernel's `VmHWM` to the current RSS (writes `5` to `/proc/self/clear_refs`).
pub fn reset_rss_high_water_mark() -> Result<()> {
    if !host_memory_supported() {
        return Err(unsupported("host memory"));
    }
    let path = "/proc/self/clear_refs";
    std::fs::write(path, b"5").map_err(|e| Error::io(path, e))
}

/// Parse the text of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Result<SystemMemory> {
    let total = field(text, "MemTotal", "/proc/meminfo")?;
    let available = field(text, "MemAvailable", "/proc/meminfo")?;
    Ok(SystemMemory {
        total_bytes: total,
        available_bytes: available,
        used_bytes: total.saturating_sub(available),
    })
}

/// The machine's memory now.
pub fn system_memory() -> Result<SystemMemory> {
    parse_meminfo(&read_proc("/proc/meminfo")?)
}

/// What the sampling thread and the owner share.
#[derive(Debug, Default)]
struct Shared {
    peak_rss: AtomicU64,
    peak_system_used: AtomicU64,
    samples: AtomicU64,
    /// True while `VmHWM` has been reset at or after the current peak window began.
    hwm_valid: AtomicBool,
    /// The first sampling error, if any (sampling goes on for what can be read).
    error: Mutex<Option<String>>,
}

impl Shared {
    fn sample(&self) {
        match try_current_rss_bytes() {
            Ok(rss) => {
                self.peak_rss.fetch_max(rss, Ordering::Relaxed);
            }
            Err(e) => self.record_error(e),
        }
        match system_memory() {
            Ok(m) => {
                self.peak_system_used
                    .fetch_max(m.used_bytes, Ordering::Relaxed);
            }
            Err(e) => self.record_error(e),
        }
        self.samples.fetch_add(1, Ordering::Relaxed);
    }

    fn record_error(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock() {
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }
    }

    fn reset(&self) {
        let ok = reset_rss_high_water_mark().is_ok();
        self.hwm_valid.store(ok, Ordering::Relaxed);
        self.peak_rss.store(0, Ordering::Relaxed);
        self.peak_system_used.store(0, Ordering::Relaxed);
        self.sample();
    }
}

/// A background thread that samples the process RSS and the system's used memory and keeps
/// their peaks since `start` or the last `reset_peak`.
///
/// `reset_peak` also resets the kernel's process-wide `VmHWM`, so run one sampler per process.
#[derive(Debug)]
pub struct HostSampler {
    shared: Arc<Shared>,
    stop_tx: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
    interval: Duration,
}

impl HostSampler {
    /// Start sampling every `interval` (a zero interval is raised to 1 ms). One sample is taken
    /// before this returns.
    pub fn start(interval: Duration) -> HostSampler {
        let interval = interval.max(Duration::from_millis(1));
        let shared = Arc::new(Shared::default());
        shared.reset();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("vosbench-host-sampler".into())
            .spawn(move || {
                // A message or a dropped sender both mean stop.
                while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval) {
                    thread_shared.sample();
                }
            });
        let handle = match handle {
            Ok(h) => Some(h),
            Err(e) => {
                shared.record_error(Error::Other(format!(
                    "cannot start the host memory sampling thread ({e}); peaks come from VmHWM and on-demand reads only"
                )));
                None
            }
        };
        HostSampler {
            shared,
            stop_tx: Some(stop_tx),
            handle,
            interval,
        }
    }

    /// The sampling interval in use.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Peak process RSS since start or the last reset, in bytes: the largest of the samples, the
    /// RSS now and (when its reset succeeded) the kernel's `VmHWM`.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.shared.sample();
        let mut peak = self.shared.peak_rss.load(Ordering::Relaxed);
        if self.shared.hwm_valid.load(Ordering::Relaxed) {
            if let Ok(hwm) = try_rss_high_water_mark_bytes() {
                peak = peak.max(hwm);
            }
        }
        peak
    }

    /// Peak system used memory (`MemTotal - MemAvailable`) since start or the last reset, in
    /// bytes, at the sampling resolution.
    pub fn system_peak_used_bytes(&self) -> u64 {
        self.shared.sample();
        self.shared.peak_system_used.load(Ordering::Relaxed)
    }

    /// Whether the peak RSS includes the kernel's `VmHWM` (false when `clear_refs` could not be
    /// written, e.g. in some containers: then short spikes between samples can be missed).
    pub fn uses_kernel_high_water_mark(&self) -> bool {
        self.shared.hwm_valid.load(Ordering::Relaxed)
    }

    /// Number of samples taken so far (including on-demand ones).
    pub fn samples(&self) -> u64 {
        self.shared.samples.load(Ordering::Relaxed)
    }

    /// The first error met while sampling, if any (e.g. an unsupported platform).
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Start a new peak window from the current values.
    pub fn reset_peak(&self) {
        self.shared.reset();
    }

    /// Stop the sampling thread and wait for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            // The thread may already have exited; then there is nobody to tell.
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                self.shared.record_error(Error::Other(
                    "the host memory sampling thread panicked".into(),
                ));
            }
        }
    }
}

impl Drop for HostSampler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Bytes to MiB (1024 * 1024), as the benchmark CSV reports memory.
pub fn to_mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`). Linux fixes it at 100 for user
/// space on every mainstream architecture (x86_64, arm64): it is what `sysconf(_SC_CLK_TCK)`
/// returns there. Reading it through `sysconf` would need a `libc` dependency, so it is assumed.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// The `starttime` field (22) of a `/proc/<pid>/stat` line: clock ticks after boot at which the
/// process started. The command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_stat_starttime(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts with field 3 (state)
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Seconds since boot, the first number of `/proc/uptime`.
pub fn parse_uptime(uptime: &str) -> Option<f64> {
    uptime.split_whitespace().next()?.parse().ok()
}

/// How long this process has existed, in seconds (uptime now minus the process start time, both
/// counted from boot), at the 10 ms resolution of `starttime`. `None` where procfs is missing.
pub fn process_age_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    let start = parse_stat_starttime(&stat)? as f64 / CLOCK_TICKS_PER_SECOND;
    Some((parse_uptime(&up)? - start).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starttime_is_field_22_even_with_spaces_in_the_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime priority nice threads itrealvalue starttime vsize ...
        let stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1234567 ...";
        assert_eq!(parse_stat_starttime(stat), Some(987654));
        assert_eq!(parse_stat_starttime("garbage"), None);
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345.67));
    }

    #[test]
    fn this_process_has_an_age() {
        if cfg!(target_os = "linux") {
            let age = process_age_s().expect("procfs");
            assert!((0.0..86400.0 * 365.0).contains(&age), "{age}");
        }
    }
}
