//! NVIDIA Jetson (Tegra) environment capture, read from a root folder (`/` on the machine, a
//! fake tree in tests): what module it is, which L4T / JetPack release, the power mode, whether
//! `jetson_clocks` pinned the clocks, the GPU and memory-controller (EMC) frequencies; a parser of
//! `tegrastats` lines; a sampler that writes a CSV while a benchmark phase runs (`tegrastats`
//! when present, else `/proc/meminfo` and the sysfs GPU load); and the unified-memory budget rule
//! of docs/jetson.md.
//!
//! Files read, relative to the root (each may be absent; what is missing stays `None`):
//! - `etc/nv_tegra_release`: `# R36 (release), REVISION: 3.0, ...` gives L4T 36.3.0;
//! - `proc/device-tree/model`: the module (`NVIDIA Jetson Orin Nano Developer Kit`);
//! - `sys/devices/soc0/{family,machine,soc_id}`: the SoC (`Tegra`, `234` for Orin);
//! - `var/lib/nvpmodel/status` (`pmode:0002 ...`) and `etc/nvpmodel.conf` (`< POWER_MODEL ID=2
//!   NAME=15W >`): the nvpmodel mode and its name;
//! - `sys/class/devfreq/<gpu>/{cur_freq,min_freq,max_freq}` (a device named `*.ga10b`,
//!   `*.gv11b`, `*.gp10b`, `*.gpu`): the GPU clock, Hz;
//! - `sys/devices/system/cpu/cpu*/cpufreq/scaling_{min,max}_freq`: with the GPU's, whether the
//!   clocks are pinned (`jetson_clocks` sets every minimum to its maximum);
//! - `sys/kernel/debug/bpmp/debug/clk/emc/rate` (root only): the EMC clock, Hz;
//! - `sys/devices/gpu.0/load` or `sys/devices/platform/gpu.0/load`: GPU load in per mille;
//! - `proc/meminfo`: memory, for the budget rule and the fallback sampler.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim_end_matches(['\0', '\n', ' ']).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What the machine says about itself as a Jetson.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JetsonInfo {
    /// The device-tree model, e.g. `NVIDIA Jetson Orin Nano Developer Kit`.
    pub model: Option<String>,
    /// L4T release, e.g. `36.3.0`.
    pub l4t: Option<String>,
    /// The JetPack release that ships that L4T (None when the L4T is not in the table).
    pub jetpack: Option<String>,
    /// `sys/devices/soc0`: family and SoC id, e.g. `Tegra 234`.
    pub soc: Option<String>,
    /// nvpmodel mode id and, from nvpmodel.conf, its name (`2 (15W)`).
    pub nvpmodel: Option<String>,
    /// Clocks pinned at their maximum (`jetson_clocks`): GPU and every CPU minimum equal to the
    /// maximum. None when no clock could be read.
    pub jetson_clocks: Option<bool>,
    pub gpu_freq_hz: Option<u64>,
    pub gpu_min_freq_hz: Option<u64>,
    pub gpu_max_freq_hz: Option<u64>,
    pub emc_freq_hz: Option<u64>,
}

/// L4T `major.minor[.patch]` from the first line of `nv_tegra_release`
/// (`# R36 (release), REVISION: 3.0, ...`).
pub fn parse_l4t(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let major = line
        .split_whitespace()
        .find_map(|t| t.strip_prefix('R'))?
        .parse::<u32>()
        .ok()?;
    let rev = line
        .split("REVISION:")
        .nth(1)?
        .split(',')
        .next()?
        .trim()
        .to_string();
    if rev.is_empty() || !rev.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let mut s = format!("{major}.{rev}");
    if s.matches('.').count() == 1 {
        s.push_str(".0");
    }
    Some(s)
}

/// The JetPack release of an L4T release (NVIDIA's release table; unknown ones give None).
pub fn jetpack_for_l4t(l4t: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("36.4.4", "6.2.1"),
        ("36.4.3", "6.2"),
        ("36.4.0", "6.1"),
        ("36.3.0", "6.0"),
        ("36.2.0", "6.0 DP"),
        ("35.6.0", "5.1.4"),
        ("35.5.0", "5.1.3"),
        ("35.4.1", "5.1.2"),
        ("35.3.1", "5.1.1"),
        ("35.2.1", "5.1"),
        ("35.1.0", "5.0.2"),
    ];
    TABLE.iter().find(|(l, _)| *l == l4t).map(|(_, j)| *j)
}

/// The nvpmodel mode from `var/lib/nvpmodel/status` (`pmode:0002 fmode:...`), named from
/// `etc/nvpmodel.conf` when it lists it.
fn nvpmodel(root: &Path) -> Option<String> {
    let status = read(root, "var/lib/nvpmodel/status")?;
    let id: u32 = status
        .split_whitespace()
        .find_map(|t| t.strip_prefix("pmode:"))?
        .parse()
        .ok()?;
    let name = read(root, "etc/nvpmodel.conf").and_then(|conf| {
        conf.lines().find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("<")?.trim().strip_prefix("POWER_MODEL")?;
            let mut mid = None;
            let mut mname = None;
            for kv in rest.trim_end_matches('>').split_whitespace() {
                if let Some(v) = kv.strip_prefix("ID=") {
                    mid = v.parse::<u32>().ok();
                } else if let Some(v) = kv.strip_prefix("NAME=") {
                    mname = Some(v.to_string());
                }
            }
            (mid == Some(id)).then_some(mname).flatten()
        })
    });
    Some(match name {
        Some(n) => format!("{id} ({n})"),
        None => id.to_string(),
    })
}

/// The GPU's devfreq folder.
fn gpu_devfreq(root: &Path) -> Option<PathBuf> {
    let dir = root.join("sys/class/devfreq");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    names.into_iter().find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            [".ga10b", ".gv11b", ".gp10b", ".gpu"]
                .iter()
                .any(|s| n.ends_with(s))
        })
    })
}

/// Every CPU's (scaling_min_freq, scaling_max_freq).
fn cpu_freq_bounds(root: &Path) -> Vec<(u64, u64)> {
    let dir = root.join("sys/devices/system/cpu");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let is_cpu = name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let f = e.path().join("cpufreq");
        if let (Some(lo), Some(hi)) = (
            read_u64(&f.join("scaling_min_freq")),
            read_u64(&f.join("scaling_max_freq")),
        ) {
            out.push((lo, hi));
        }
    }
    out
}

/// Detect a Jetson under `root`: None when neither `etc/nv_tegra_release` nor a device-tree
/// model naming Jetson/Tegra/Orin nor a Tegra `soc0` family is there.
pub fn detect(root: &Path) -> Option<JetsonInfo> {
    let release = read(root, "etc/nv_tegra_release");
    let model = read(root, "proc/device-tree/model");
    let family = read(root, "sys/devices/soc0/family");
    let soc_id = read(root, "sys/devices/soc0/soc_id");
    let tegra_model = model.as_deref().is_some_and(|m| {
        let l = m.to_ascii_lowercase();
        l.contains("jetson") || l.contains("tegra") || l.contains("orin")
    });
    let tegra_soc = family
        .as_deref()
        .is_some_and(|f| f.to_ascii_lowercase().contains("tegra"));
    if release.is_none() && !tegra_model && !tegra_soc {
        return None;
    }
    let l4t = release.as_deref().and_then(parse_l4t);
    let jetpack = l4t.as_deref().and_then(jetpack_for_l4t).map(str::to_string);
    let soc = match (family, soc_id) {
        (Some(f), Some(i)) => Some(format!("{f} {i}")),
        (f, i) => f.or(i),
    };
    let gpu = gpu_devfreq(root);
    let g = |name: &str| gpu.as_ref().and_then(|d| read_u64(&d.join(name)));
    let (gpu_freq_hz, gpu_min_freq_hz, gpu_max_freq_hz) =
        (g("cur_freq"), g("min_freq"), g("max_freq"));
    let cpus = cpu_freq_bounds(root);
    let mut pinned: Vec<bool> = cpus.iter().map(|(lo, hi)| lo == hi).collect();
    if let (Some(lo), Some(hi)) = (gpu_min_freq_hz, gpu_max_freq_hz) {
        pinned.push(lo == hi);
    }
    let jetson_clocks = (!pinned.is_empty()).then(|| pinned.iter().all(|&p| p));
    let emc_freq_hz = read_u64(&root.join("sys/kernel/debug/bpmp/debug/clk/emc/rate"));
    Some(JetsonInfo {
        model: if tegra_model { model } else { None },
        l4t,
        jetpack,
        soc,
        nvpmodel: nvpmodel(root),
        jetson_clocks,
        gpu_freq_hz,
        gpu_min_freq_hz,
        gpu_max_freq_hz,
        emc_freq_hz,
    })
}

/// GPU load in percent from the sysfs per-mille file, if any.
pub fn gpu_load_pct(root: &Path) -> Option<f64> {
    ["sys/devices/gpu.0/load", "sys/devices/platform/gpu.0/load"]
        .iter()
        .find_map(|rel| read_u64(&root.join(rel)))
        .map(|pm| pm as f64 / 10.0)
}

// ------------------------------------------------------------------------------------------------
// tegrastats
// ------------------------------------------------------------------------------------------------

/// One `tegrastats` line, parsed. Sizes in MB as tegrastats prints them (MiB), clocks in MHz.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TegraStats {
    pub ram_used_mb: u64,
    pub ram_total_mb: u64,
    pub swap_used_mb: Option<u64>,
    pub swap_total_mb: Option<u64>,
    pub swap_cached_mb: Option<u64>,
    /// Other `NAME used/totalMB` or `NAME usedMB` pools (NVMAP, IOVA where the BSP prints them).
    pub pools_mb: Vec<(String, u64, Option<u64>)>,
    /// GR3D (the GPU): load %, and the clock(s) of its GPCs where printed.
    pub gr3d_pct: Option<f64>,
    pub gr3d_mhz: Vec<u64>,
    pub emc_pct: Option<f64>,
    pub emc_mhz: Option<u64>,
    /// Temperatures in °C; sensors that read -256 (off) are left out.
    pub temps_c: Vec<(String, f64)>,
    /// Power rails: (name, current mW, average mW).
    pub rails_mw: Vec<(String, u64, Option<u64>)>,
}

impl TegraStats {
    pub fn pool(&self, name: &str) -> Option<u64> {
        self.pools_mb
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, u, _)| *u)
    }

    /// The board's input power, mW: `VDD_IN`, or `POM_5V_IN` on older modules, else the sum of
    /// the rails.
    pub fn input_power_mw(&self) -> Option<u64> {
        let find = |n: &str| self.rails_mw.iter().find(|r| r.0 == n).map(|r| r.1);
        find("VDD_IN").or_else(|| find("POM_5V_IN")).or_else(|| {
            (!self.rails_mw.is_empty()).then(|| self.rails_mw.iter().map(|r| r.1).sum())
        })
    }
}

/// `X/YUNIT` (e.g. `2868/7620MB`) -> (X, Y).
fn pair(tok: &str, unit: &str) -> Option<(u64, u64)> {
    let (a, b) = tok.strip_suffix(unit)?.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `P%@F`, `P%@[F,G]`, `P%` -> (P, [F...]).
fn load_at(tok: &str) -> Option<(f64, Vec<u64>)> {
    let (p, rest) = match tok.split_once('@') {
        Some((p, r)) => (p, Some(r)),
        None => (tok, None),
    };
    let pct: f64 = p.strip_suffix('%')?.parse().ok()?;
    let freqs = rest
        .map(|r| {
            r.trim_matches(['[', ']'])
                .split(',')
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Some((pct, freqs))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse one line of `tegrastats` output (Jetson Nano / TX2 / Xavier / Orin formats: the date
/// prefix optional, fields in any order; unknown fields are skipped). A line without the `RAM`
/// field is an error.
pub fn parse_tegrastats_line(line: &str) -> Result<TegraStats> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let mut s = TegraStats::default();
    let mut ram = false;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let next = toks.get(i + 1).copied().unwrap_or("");
        match t {
            "RAM" => {
                if let Some((u, tot)) = pair(next, "MB") {
                    (s.ram_used_mb, s.ram_total_mb, ram) = (u, tot, true);
                    i += 1;
                }
            }
            "SWAP" => {
                if let Some((u, tot)) = pair(next, "MB") {
                    (s.swap_used_mb, s.swap_total_mb) = (Some(u), Some(tot));
                    i += 1;
                }
            }
            "(cached" => {
                s.swap_cached_mb = next
                    .trim_end_matches(')')
                    .strip_suffix("MB")
                    .and_then(|v| v.parse().ok());
                i += 1;
            }
            "GR3D_FREQ" => {
                if let Some((p, f)) = load_at(next) {
                    (s.gr3d_pct, s.gr3d_mhz) = (Some(p), f);
                    i += 1;
                }
            }
            "EMC_FREQ" => {
                if let Some((p, f)) = load_at(next) {
                    (s.emc_pct, s.emc_mhz) = (Some(p), f.first().copied());
                    i += 1;
                }
            }
            _ if is_name(t) => {
                if let Some((cur, avg)) = next
                    .split_once('/')
                    .and_then(|(a, b)| Some((a.strip_suffix("mW")?, b.strip_suffix("mW")?)))
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                {
                    s.rails_mw.push((t.to_string(), cur, Some(avg)));
                    i += 1;
                } else if let (true, Some((cur, avg))) = (
                    t.starts_with("POM_") || t.starts_with("VDD_"),
                    pair(next, ""),
                ) {
                    // older modules: `POM_5V_IN 1101/1101` (mW, no unit)
                    s.rails_mw.push((t.to_string(), cur, Some(avg)));
                    i += 1;
                } else if let Some((u, tot)) = pair(next, "MB") {
                    s.pools_mb.push((t.to_string(), u, Some(tot)));
                    i += 1;
                } else if let Some(u) = next.strip_suffix("MB").and_then(|v| v.parse().ok()) {
                    s.pools_mb.push((t.to_string(), u, None));
                    i += 1;
                }
            }
            _ => {
                // a temperature: `name@47.75C`
                if let Some((name, v)) = t.split_once('@') {
                    if let Some(c) = v.strip_suffix('C').and_then(|c| c.parse::<f64>().ok()) {
                        if is_name(name) && c > -200.0 {
                            s.temps_c.push((name.to_string(), c));
                        }
                    }
                }
            }
        }
        i += 1;
    }
    if !ram {
        return Err(Error::Input(format!(
            "not a tegrastats line (no RAM used/total field): {}",
            line.chars().take(80).collect::<String>()
        )));
    }
    Ok(s)
}

// ------------------------------------------------------------------------------------------------
// the unified-memory budget rule
// ------------------------------------------------------------------------------------------------

/// The share of memory kept free on unified memory (docs/jetson.md: the unified-memory guide's
/// 20 % rule): a budget above 80 % of `MemTotal` is refused.
pub const UNIFIED_FREE_SHARE_PCT: u64 = 20;

/// Memory of a unified-memory machine from `proc/meminfo` under `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnifiedMemory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

impl UnifiedMemory {
    pub fn read(root: &Path) -> Result<UnifiedMemory> {
        let p = root.join("proc/meminfo");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        let sys = crate::host::procfs::parse_meminfo(&text)?;
        let bytes = |k: &str| crate::host::procfs::parse_kb_field(&text, k).unwrap_or(0);
        Ok(UnifiedMemory {
            total_bytes: sys.total_bytes,
            available_bytes: sys.available_bytes,
            swap_total_bytes: bytes("SwapTotal"),
            swap_free_bytes: bytes("SwapFree"),
        })
    }

    /// The figure a budget is held against: system used memory, `MemTotal - MemAvailable` (CPU,
    /// GPU allocations, CUDA context and OS together). Not `cuMemGetInfo`: on Tegra its free
    /// figure is the system's free memory, which neither counts reclaimable cache nor swap.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }

    /// The largest budget that keeps [`UNIFIED_FREE_SHARE_PCT`] of `MemTotal` free.
    pub fn max_budget_bytes(&self) -> u64 {
        self.total_bytes / 100 * (100 - UNIFIED_FREE_SHARE_PCT)
    }

    /// Check a budget against the rule: Err (bad input, exit 2) when it leaves less than
    /// [`UNIFIED_FREE_SHARE_PCT`] % of `MemTotal` free.
    pub fn check_budget(&self, budget_bytes: u64) -> Result<()> {
        if budget_bytes > self.max_budget_bytes() {
            return Err(Error::Budget(format!(
                "--mem-budget-mb {} is above {} MiB, 80 % of this machine's {} MiB of unified memory (MemTotal): keep {UNIFIED_FREE_SHARE_PCT} % free, since the GPU allocates from the same RAM and cuMemGetInfo on Tegra counts neither cache nor swap (docs/jetson.md)",
                budget_bytes >> 20,
                self.max_budget_bytes() >> 20,
                self.total_bytes >> 20
            )));
        }
        Ok(())
    }

    /// Check a budget against the rule, then whether `extra` more bytes on top of what is used
    /// now still fit it. Err: the budget itself breaks the rule (bad input).
    pub fn fits(&self, budget_bytes: u64, extra_bytes: u64) -> Result<bool> {
        self.check_budget(budget_bytes)?;
        Ok(self.used_bytes().saturating_add(extra_bytes) <= budget_bytes)
    }
}

// ------------------------------------------------------------------------------------------------
// the sampler
// ------------------------------------------------------------------------------------------------

/// The CSV the sampler writes, one row per sample: the time (seconds since the Unix epoch, as
/// `summary.json`'s process records), the phase it was taken in (`inference`, or
/// `inference/<model>` with one process per model), where it came from (`tegrastats` or
/// `procfs`), then the figures.
pub const SAMPLE_COLUMNS: &str = "t_unix_s,phase,source,ram_used_MiB,ram_total_MiB,swap_used_MiB,swap_total_MiB,nvmap_MiB,iova_MiB,gpu_load_pct,gpu_MHz,emc_pct,emc_MHz,temp_max_C,power_in_mW,temps,rails";

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A CSV row of a tegrastats sample at `t_s` in phase `label`.
pub fn tegrastats_row(t_s: f64, label: &str, s: &TegraStats) -> String {
    let temps: Vec<String> = s.temps_c.iter().map(|(n, c)| format!("{n}={c}")).collect();
    let rails: Vec<String> = s
        .rails_mw
        .iter()
        .map(|(n, c, _)| format!("{n}={c}"))
        .collect();
    let tmax = s.temps_c.iter().map(|t| t.1).reduce(f64::max);
    format!(
        "{t_s:.3},{},tegrastats,{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        csv_field(label),
        s.ram_used_mb,
        s.ram_total_mb,
        opt(s.swap_used_mb),
        opt(s.swap_total_mb),
        opt(s.pool("NVMAP")),
        opt(s.pool("IOVA")),
        opt(s.gr3d_pct),
        opt(s.gr3d_mhz.iter().copied().max()),
        opt(s.emc_pct),
        opt(s.emc_mhz),
        opt(tmax),
        opt(s.input_power_mw()),
        temps.join(";"),
        rails.join(";"),
    )
}

/// A CSV row of a fallback sample (procfs + sysfs) at `t_s` in phase `label`.
pub fn procfs_row(t_s: f64, label: &str, m: &UnifiedMemory, gpu_load: Option<f64>) -> String {
    let mib = |b: u64| b >> 20;
    format!(
        "{t_s:.3},{},procfs,{},{},{},{},,,{},,,,,,,",
        csv_field(label),
        mib(m.used_bytes()),
        mib(m.total_bytes),
        mib(m.swap_total_bytes.saturating_sub(m.swap_free_bytes)),
        mib(m.swap_total_bytes),
        opt(gpu_load),
    )
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The `tegrastats` program to run: the first `tegrastats` in a folder of `path` (the `PATH`
/// setting) under `root`, then in that folder of the real system; then `/usr/bin` and
/// `/usr/sbin` under `root` (where JetPack installs it, for a `PATH` without them).
pub fn find_tegrastats(root: &Path, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let under = |dir: &Path| {
        root.join(dir.strip_prefix("/").unwrap_or(dir))
            .join("tegrastats")
    };
    let mut candidates = Vec::new();
    if let Some(p) = path {
        for dir in std::env::split_paths(p).filter(|d| d.is_absolute()) {
            candidates.push(under(&dir));
            candidates.push(dir.join("tegrastats"));
        }
    }
    for dir in ["/usr/bin", "/usr/sbin"] {
        candidates.push(under(Path::new(dir)));
    }
    candidates.into_iter().find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        m.is_file()
    }
}

/// What a sampling run saw.
#[allow(non_snake_case)]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleSummary {
    pub source: String,
    pub samples: usize,
    /// Peak system-wide RAM used, MiB.
    pub peak_ram_used_MiB: Option<u64>,
    /// Mean GPU load over the samples that had one, %.
    pub mean_gpu_load_pct: Option<f64>,
    /// The first problem met (a line that did not parse, a file that could not be read).
    pub error: Option<String>,
}

#[derive(Default)]
struct Acc {
    samples: usize,
    peak: Option<u64>,
    load_sum: f64,
    loads: usize,
    error: Option<String>,
}

impl Acc {
    fn add(&mut self, ram_used_mib: u64, load: Option<f64>) {
        self.samples += 1;
        self.peak = Some(self.peak.map_or(ram_used_mib, |p| p.max(ram_used_mib)));
        if let Some(l) = load {
            self.load_sum += l;
            self.loads += 1;
        }
    }

    fn note(&mut self, e: String) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

/// Samples the machine into a CSV until stopped: `tegrastats --interval MS` when that program
/// is given and starts, else `proc/meminfo` and the sysfs GPU load under the root every interval.
pub struct JetsonSampler {
    source: &'static str,
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    acc: Arc<Mutex<Acc>>,
    handle: Option<JoinHandle<()>>,
}

impl JetsonSampler {
    /// Start sampling into `csv`, its rows labelled with the phase `label`: appended when the
    /// file exists, else created with the header first (so the processes of one run share one
    /// file). `tegrastats`: the program to run (None, or one that cannot start: the procfs
    /// fallback).
    pub fn start(
        root: &Path,
        tegrastats: Option<&Path>,
        interval: Duration,
        csv: &Path,
        label: &str,
    ) -> Result<JetsonSampler> {
        let interval = interval.max(Duration::from_millis(10));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(csv)
            .map_err(|e| Error::io(csv, e))?;
        let empty = f.metadata().map_err(|e| Error::io(csv, e))?.len() == 0;
        let mut out = std::io::BufWriter::new(f);
        if empty {
            writeln!(out, "{SAMPLE_COLUMNS}").map_err(|e| Error::io(csv, e))?;
        }
        out.flush().map_err(|e| Error::io(csv, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let acc = Arc::new(Mutex::new(Acc::default()));
        let label = label.to_string();
        let child = tegrastats.and_then(|p| {
            Command::new(p)
                .arg("--interval")
                .arg(interval.as_millis().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        });
        let (source, child, handle) = match child {
            Some(mut c) => {
                let stdout = c.stdout.take().ok_or_else(|| {
                    Error::Other("tegrastats started without an output pipe".into())
                })?;
                let acc2 = Arc::clone(&acc);
                let csv_path = csv.to_path_buf();
                let h = std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let t = unix_now();
                        let mut a = acc2.lock().unwrap_or_else(|p| p.into_inner());
                        match parse_tegrastats_line(&line) {
                            Ok(s) => {
                                a.add(s.ram_used_mb, s.gr3d_pct);
                                if let Err(e) = writeln!(out, "{}", tegrastats_row(t, &label, &s))
                                    .and_then(|_| out.flush())
                                {
                                    a.note(format!("{}: {e}", csv_path.display()));
                                }
                            }
                            Err(e) => a.note(e.to_string()),
                        }
                    }
                });
                ("tegrastats", Some(c), h)
            }
            None => {
                let acc2 = Arc::clone(&acc);
                let stop2 = Arc::clone(&stop);
                let root = root.to_path_buf();
                let csv_path = csv.to_path_buf();
                let h = std::thread::spawn(move || loop {
                    let t = unix_now();
                    let load = gpu_load_pct(&root);
                    {
                        let mut a = acc2.lock().unwrap_or_else(|p| p.into_inner());
                        match UnifiedMemory::read(&root) {
                            Ok(m) => {
                                a.add(m.used_bytes() >> 20, load);
                                if let Err(e) = writeln!(out, "{}", procfs_row(t, &label, &m, load))
                                    .and_then(|_| out.flush())
                                {
                                    a.note(format!("{}: {e}", csv_path.display()));
                                }
                            }
                            Err(e) => a.note(e.to_string()),
                        }
                    }
                    // sleep in short steps so stop() returns promptly
                    let until = Instant::now() + interval;
                    while Instant::now() < until {
                        if stop2.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5).min(interval));
                    }
                    if stop2.load(Ordering::Relaxed) {
                        return;
                    }
                });
                ("procfs", None, h)
            }
        };
        Ok(JetsonSampler {
            source,
            child,
            stop,
            acc,
            handle: Some(handle),
        })
    }

    /// `tegrastats` or `procfs`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Stop sampling (ending the tegrastats child this sampler started) and summarise.
    pub fn stop(mut self) -> SampleSummary {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let a = self.acc.lock().unwrap_or_else(|p| p.into_inner());
        SampleSummary {
            source: self.source.to_string(),
            samples: a.samples,
            peak_ram_used_MiB: a.peak,
            mean_gpu_load_pct: (a.loads > 0).then(|| a.load_sum / a.loads as f64),
            error: a.error.clone(),
        }
    }
}

impl Drop for JetsonSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
