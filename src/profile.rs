//! Opt-in stage timing for finding where a frame's time goes. A [`Profiler`] is an object owned
//! by whoever runs: the CLI makes one when `VOSBENCH_PROFILE` is set (read once, at the edge),
//! hands it to every session it opens (`SessionOptions::profiler`, then the session's execution
//! context, `crate::exec::ExecCtx`), and prints [`Profiler::report`] to stderr when it exits.
//! Every instrumented stage a session runs then synchronizes its device before and after it runs
//! and adds its wall time to that profiler's table. In [`ProfileMode::HostOnly`]
//! (`VOSBENCH_PROFILE=host`) the closing synchronization is skipped, so a stage's time is what the
//! host spends issuing it. A session without a profiler pays one `Option` check per stage and
//! synchronizes nothing, so benchmark timings are unaffected.
//!
//! On a CUDA device with a memory pool the table also says which stages raise the pool's
//! high-water marks: for each stage, by how many MiB its calls raised the reserved peak (memory
//! the pool took from the driver) and the live-tensor peak, summed over its calls. A stage that
//! never sets a new peak shows 0 even if it allocates a lot: the columns say where the process
//! peak is made, not how much a stage uses.

use crate::cuda::memory::{Accounting, DeviceMemory};
use candle_core::Device;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a stage's time measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileMode {
    /// The device is synchronized after the stage: the time the stage takes to run.
    Synchronized,
    /// Only the host's time to issue the stage's work (`VOSBENCH_PROFILE=host`).
    HostOnly,
}

impl ProfileMode {
    /// The mode a `VOSBENCH_PROFILE` value asks for: none when unset, empty or `0`, host time for
    /// `host`, synchronized stage time for anything else.
    pub fn from_setting(value: Option<&str>) -> Option<ProfileMode> {
        match value {
            None | Some("") | Some("0") => None,
            Some("host") => Some(ProfileMode::HostOnly),
            Some(_) => Some(ProfileMode::Synchronized),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    time: Duration,
    calls: u64,
    /// Bytes by which this stage's calls raised the pool's reserved / live high-water marks.
    reserved_growth: u64,
    used_growth: u64,
}

/// A table of stage timings and pool-peak growth; see the module documentation.
#[derive(Debug)]
pub struct Profiler {
    mode: ProfileMode,
    table: Mutex<BTreeMap<&'static str, Entry>>,
    /// The pool of the first CUDA device profiled (attached without changing its settings).
    pool: Mutex<Option<DeviceMemory>>,
}

impl Profiler {
    pub fn new(mode: ProfileMode) -> Self {
        Self {
            mode,
            table: Mutex::new(BTreeMap::new()),
            pool: Mutex::new(None),
        }
    }

    pub fn mode(&self) -> ProfileMode {
        self.mode
    }

    /// `VOSBENCH_PROFILE=host`: a stage starts on an idle device and its time ends when the host
    /// has issued its work, without waiting for the device. Where this equals the synchronized
    /// time, the stage is bound by the host issuing kernels, not by the device running them.
    pub fn host_only(&self) -> bool {
        self.mode == ProfileMode::HostOnly
    }

    /// The pool's (live, reserved) high-water marks now; None off CUDA or without a pool. A
    /// driver failure to read them is an error.
    fn pool_peaks(&self, device: &Device) -> candle_core::Result<Option<(u64, u64)>> {
        if !matches!(device, Device::Cuda(_)) {
            return Ok(None);
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.is_none() {
            *pool = DeviceMemory::attach(device);
        }
        let Some(m) = pool.as_ref() else {
            return Ok(None);
        };
        if m.accounting() != Accounting::MemoryPool {
            return Ok(None);
        }
        let read =
            |r: crate::error::Result<u64>| r.map_err(|e| candle_core::Error::Msg(e.to_string()));
        Ok(Some((
            read(m.peak_used_bytes())?,
            read(m.peak_reserved_bytes())?,
        )))
    }

    /// Run `f` as stage `name` on `device`, timed into this table. Errors pass through
    /// unchanged.
    pub fn stage<T, E: From<candle_core::Error>>(
        &self,
        name: &'static str,
        device: &Device,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        device.synchronize()?;
        let before = self.pool_peaks(device)?;
        let t = Instant::now();
        let out = f()?;
        if !self.host_only() {
            device.synchronize()?;
        }
        let dt = t.elapsed();
        let after = match before {
            Some(_) => self.pool_peaks(device)?,
            None => None,
        };
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let e = table.entry(name).or_default();
        e.time += dt;
        e.calls += 1;
        if let (Some((u0, r0)), Some((u1, r1))) = (before, after) {
            e.used_growth += u1.saturating_sub(u0);
            e.reserved_growth += r1.saturating_sub(r0);
        }
        Ok(out)
    }

    /// How many times stage `name` has run (0 if never).
    pub fn calls(&self, name: &str) -> u64 {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.get(name).map_or(0, |e| e.calls)
    }

    /// The stages recorded so far, sorted by name.
    pub fn stages(&self) -> Vec<&'static str> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.keys().copied().collect()
    }

    /// The table as text: stage, calls, total and mean milliseconds, and on CUDA the MiB by which
    /// the stage raised the pool's reserved and live peaks (stages nest: a stage's figures
    /// include the stages inside it). None when nothing was recorded.
    pub fn report(&self) -> Option<String> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.is_empty() {
            return None;
        }
        let memory = self
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|m| m.accounting() == Accounting::MemoryPool);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_picks_the_mode() {
        for off in [None, Some(""), Some("0")] {
            assert_eq!(ProfileMode::from_setting(off), None);
        }
        assert_eq!(
            ProfileMode::from_setting(Some("host")),
            Some(ProfileMode::HostOnly)
        );
        for on in ["1", "yes", "device"] {
            assert_eq!(
                ProfileMode::from_setting(Some(on)),
                Some(ProfileMode::Synchronized)
            );
        }
    }

    #[test]
    fn stages_are_counted_and_reported() -> candle_core::Result<()> {
        let p = Profiler::new(ProfileMode::Synchronized);
        assert!(p.report().is_none());
        for _ in 0..3 {
            p.stage("a", &Device::Cpu, || Ok::<_, candle_core::Error>(()))?;
        }
        let err = p.stage("b", &Device::Cpu, || {
            Err::<(), _>(candle_core::Error::Msg("boom".into()))
        });
        assert!(err.is_err());
        assert_eq!(p.calls("a"), 3);
        assert_eq!(p.calls("b"), 0);
        assert_eq!(p.stages(), ["a"]);
        let r = p.report().unwrap();
        assert!(r.starts_with("stage"), "{r}");
        assert!(r.lines().nth(1).unwrap().starts_with("a "), "{r}");
        Ok(())
    }
}
