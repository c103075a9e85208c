//! Jetson capture on a fake root (tests/fixtures/jetson/orin_nano: an Orin Nano 8 GB tree on
//! L4T 36.3 in nvpmodel mode 1, clocks not pinned) and on recorded `tegrastats` lines
//! (tests/fixtures/jetson/tegrastats.txt: Orin Nano, AGX Orin, Jetson Nano shapes; the last line
//! adds NVMAP/IOVA pools in the `NAME used/totalMB` form the parser accepts, a shape not seen on
//! a real module here); the host root, the unified-memory budget rule, the host report read
//! under a root, and the launcher's per-process sampling of phase B.

use std::path::{Path, PathBuf};
use std::time::Duration;
use vosbench::bench::jetson::{sample_interval, PhaseSampling, SAMPLES_CSV};
use vosbench::bench::mem::{check_unified_budget, DeviceInfo, MemBudget};
use vosbench::cuda::probe::probe;
use vosbench::host::jetson::{
    detect, find_tegrastats, gpu_load_pct, jetpack_for_l4t, parse_l4t, parse_tegrastats_line,
    JetsonSampler, UnifiedMemory, SAMPLE_COLUMNS,
};
use vosbench::host::HostRoot;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jetson")
}

fn lines() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("tegrastats.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Copy a fixture tree so a test can change it.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

#[test]
fn detects_the_module_release_power_mode_and_clocks() {
    let info = detect(&fixtures().join("orin_nano")).expect("a Jetson");
    assert_eq!(
        info.model.as_deref(),
        Some("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
    );
    assert_eq!(info.l4t.as_deref(), Some("36.3.0"));
    assert_eq!(info.jetpack.as_deref(), Some("6.0"));
    assert_eq!(info.soc.as_deref(), Some("Tegra 234"));
    assert_eq!(info.nvpmodel.as_deref(), Some("1 (7W)"));
    // CPU minimum 729.6 MHz below its maximum: jetson_clocks is off
    assert_eq!(info.jetson_clocks, Some(false));
    assert_eq!(info.gpu_freq_hz, Some(624_750_000));
    assert_eq!(info.gpu_max_freq_hz, Some(624_750_000));
    assert_eq!(info.emc_freq_hz, Some(2_133_000_000));
    assert_eq!(gpu_load_pct(&fixtures().join("orin_nano")), Some(41.2));
    // a desktop tree is no Jetson
    assert!(detect(&fixtures().join("desktop")).is_none());
}

#[test]
fn pinned_clocks_read_as_jetson_clocks_on() {
    let d = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("orin_nano"), d.path());
    let sys = d.path().join("sys");
    for cpu in ["cpu0", "cpu1"] {
        std::fs::write(
            sys.join(format!("devices/system/cpu/{cpu}/cpufreq/scaling_min_freq")),
            "1510400\n",
        )
        .unwrap();
    }
    // the GPU minimum still below its maximum: not pinned
    assert_eq!(detect(d.path()).unwrap().jetson_clocks, Some(false));
    std::fs::write(
        sys.join("class/devfreq/17000000.ga10b/min_freq"),
        "624750000\n",
    )
    .unwrap();
    assert_eq!(detect(d.path()).unwrap().jetson_clocks, Some(true));
    // no release file, no tegra model: the soc0 family alone still says Tegra
    std::fs::remove_file(d.path().join("etc/nv_tegra_release")).unwrap();
    std::fs::write(d.path().join("proc/device-tree/model"), "Some Board\0").unwrap();
    let info = detect(d.path()).unwrap();
    assert_eq!((info.l4t, info.model), (None, None));
}

#[test]
fn l4t_and_jetpack_releases() {
    assert_eq!(
        parse_l4t("# R35 (release), REVISION: 4.1, GCID: 1, BOARD: t186ref, EABI: aarch64"),
        Some("35.4.1".into())
    );
    assert_eq!(
        parse_l4t("# R36 (release), REVISION: 4.3, GCID: 2, BOARD: generic").as_deref(),
        Some("36.4.3")
    );
    assert_eq!(parse_l4t("garbage"), None);
    assert_eq!(jetpack_for_l4t("35.4.1"), Some("5.1.2"));
    assert_eq!(jetpack_for_l4t("36.4.3"), Some("6.2"));
    assert_eq!(jetpack_for_l4t("99.0.0"), None);
}

#[test]
fn tegrastats_lines_of_several_modules() {
    let l = lines();
    // Orin Nano
    let s = parse_tegrastats_line(&l[0]).unwrap();
    assert_eq!((s.ram_used_mb, s.ram_total_mb), (3012, 7620));
    assert_eq!((s.swap_used_mb, s.swap_total_mb), (Some(200), Some(3810)));
    assert_eq!(s.swap_cached_mb, Some(4));
    assert_eq!((s.gr3d_pct, s.gr3d_mhz.clone()), (Some(41.0), vec![624]));
    assert_eq!((s.emc_pct, s.emc_mhz), (Some(9.0), Some(2133)));
    assert_eq!(s.temps_c.len(), 6);
    assert!(s.temps_c.contains(&("gpu".into(), 49.9)));
    assert_eq!(s.rails_mw[0], ("VDD_IN".into(), 7212, Some(6804)));
    assert_eq!(s.input_power_mw(), Some(7212));
    // AGX Orin: two GPC clocks, sensors at -256 (off) left out, no VDD_IN (sum of the rails)
    let s = parse_tegrastats_line(&l[1]).unwrap();
    assert_eq!((s.ram_used_mb, s.ram_total_mb), (5230, 62841));
    assert_eq!(s.gr3d_mhz, vec![1300, 1298]);
    assert!(s.temps_c.iter().all(|(n, _)| !n.starts_with("CV")));
    assert_eq!(s.temps_c.len(), 8);
    assert_eq!(s.input_power_mw(), Some(9120 + 2400 + 5100));
    // Jetson Nano: no date, GR3D without brackets, POM rails without a unit, IRAM in kB skipped
    let s = parse_tegrastats_line(&l[2]).unwrap();
    assert_eq!((s.ram_used_mb, s.gr3d_pct), (1840, Some(12.0)));
    assert_eq!(s.gr3d_mhz, vec![921]);
    assert_eq!(s.input_power_mw(), Some(3120));
    assert!(s.pools_mb.is_empty(), "{:?}", s.pools_mb);
    // NVMAP / IOVA pools; GR3D and EMC without a clock
    let s = parse_tegrastats_line(&l[3]).unwrap();
    assert_eq!(s.pool("NVMAP"), Some(1800));
    assert_eq!(s.pool("IOVA"), Some(650));
    assert_eq!((s.gr3d_pct, s.emc_mhz), (Some(0.0), None));
    // not a tegrastats line
    let e = parse_tegrastats_line("hello world").unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn unified_budget_rule_on_a_fake_tree() {
    let m = UnifiedMemory::read(&fixtures().join("orin_nano")).unwrap();
    // MemTotal 7802880 kB, MemAvailable 3145728 kB: used = 4657152 kB
    assert_eq!(m.used_bytes(), 4_657_152 * 1024);
    assert_eq!(m.swap_total_bytes - m.swap_free_bytes, 204_800 * 1024);
    // 80 % of MemTotal is the largest budget the rule allows
    let max = m.max_budget_bytes();
    assert!(max <= m.total_bytes * 8 / 10 && max > m.total_bytes * 79 / 100);
    assert!(m.fits(max + 1, 0).is_err());
    assert!(m.fits(5500 << 20, 0).unwrap()); // 4548 MiB used
    assert!(!m.fits(5500 << 20, 1000 << 20).unwrap());
    assert!(!m.fits(4000 << 20, 0).unwrap());
    assert!(UnifiedMemory::read(&fixtures().join("none")).is_err());
}

#[test]
fn sampler_falls_back_to_procfs_and_summarises() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("jetson_samples.csv");
    let s = JetsonSampler::start(
        &fixtures().join("orin_nano"),
        Some(&d.path().join("no-such-tegrastats")),
        Duration::from_millis(10),
        &csv,
        "inference/m_points",
    )
    .unwrap();
    assert_eq!(s.source(), "procfs");
    std::thread::sleep(Duration::from_millis(60));
    let sum = s.stop();
    // the first sample is taken at once; how many more depends on the machine's load
    assert!(sum.samples >= 1, "{sum:?}");
    assert_eq!(sum.peak_ram_used_MiB, Some(4_657_152 / 1024));
    assert!((sum.mean_gpu_load_pct.unwrap() - 41.2).abs() < 1e-9);
    assert_eq!(sum.error, None);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut rows = text.lines();
    assert_eq!(rows.next(), Some(SAMPLE_COLUMNS));
    let first: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(first.len(), SAMPLE_COLUMNS.split(',').count());
    assert_eq!(first[1], "inference/m_points");
    assert_eq!(first[2], "procfs");
    assert_eq!(first[3], "4548");
    assert_eq!(text.lines().count(), 1 + sum.samples);
    // a second process of the same run appends under the same header
    let s = JetsonSampler::start(
        &fixtures().join("orin_nano"),
        None,
        Duration::from_millis(10),
        &csv,
        "inference/m,bbox",
    )
    .unwrap();
    let sum2 = s.stop();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.matches("t_unix_s").count(), 1);
    assert_eq!(text.lines().count(), 1 + sum.samples + sum2.samples);
    // a label with a comma is quoted
    assert!(text
        .lines()
        .last()
        .unwrap()
        .contains(",\"inference/m,bbox\",procfs,"));
}

#[test]
fn sampler_reads_a_tegrastats_program() {
    let d = tempfile::tempdir().unwrap();
    // a stand-in for tegrastats: prints the recorded lines, then waits to be stopped
    let fake = d.path().join("tegrastats");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncat '{}'\nexec sleep 30\n",
            fixtures().join("tegrastats.txt").display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let csv = d.path().join("tegrastats.csv");
    let s = JetsonSampler::start(
        d.path(),
        Some(&fake),
        Duration::from_millis(100),
        &csv,
        "inference",
    )
    .unwrap();
    assert_eq!(s.source(), "tegrastats");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&csv).unwrap().lines().count() < 5
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sum = s.stop();
    assert_eq!(sum.samples, 4, "{sum:?}");
    assert_eq!(sum.peak_ram_used_MiB, Some(5230));
    let mean = sum.mean_gpu_load_pct.unwrap();
    assert!((mean - (41.0 + 87.0 + 12.0 + 0.0) / 4.0).abs() < 1e-9);
    let text = std::fs::read_to_string(&csv).unwrap();
    let row: Vec<&str> = text.lines().nth(4).unwrap().split(',').collect();
    assert_eq!(row.len(), SAMPLE_COLUMNS.split(',').count());
    assert_eq!(
        &row[1..9],
        [
            "inference",
            "tegrastats",
            "4100",
            "7620",
            "0",
            "3810",
            "1800",
            "650"
        ]
    );
}

fn executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn tegrastats_is_found_on_path_under_the_root_then_on_the_system() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let sys_bin = d.path().join("sysbin");
    std::fs::create_dir_all(&sys_bin).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let path = std::env::join_paths([Path::new("/opt/bin"), sys_bin.as_path()]).unwrap();
    // nowhere yet
    assert_eq!(find_tegrastats(&root, Some(path.as_os_str())), None);
    // on the real system's PATH
    executable(&sys_bin.join("tegrastats"), "#!/bin/sh\n");
    assert_eq!(
        find_tegrastats(&root, Some(path.as_os_str())),
        Some(sys_bin.join("tegrastats"))
    );
    // a PATH folder under the root comes first
    executable(&root.join("opt/bin/tegrastats"), "#!/bin/sh\n");
    assert_eq!(
        find_tegrastats(&root, Some(path.as_os_str())),
        Some(root.join("opt/bin/tegrastats"))
    );
    // JetPack's /usr/bin under the root, with no PATH at all
    executable(&root.join("usr/bin/tegrastats"), "#!/bin/sh\n");
    assert_eq!(
        find_tegrastats(&root, None),
        Some(root.join("usr/bin/tegrastats"))
    );
    // a file that is not executable is not a program
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = root.join("usr/bin/tegrastats");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(find_tegrastats(&root, None), None);
    }
}

#[test]
fn unified_budget_rule_at_its_boundary_and_only_on_unified_memory() {
    let root = HostRoot::new(&fixtures().join("orin_nano")).unwrap();
    // MemTotal 7802880 kB = 7990149120 bytes; 80 % of it is just under 6096 MiB
    let max = UnifiedMemory::read(root.path()).unwrap().max_budget_bytes();
    assert_eq!(max >> 20, 6095);
    let mib = |m| Some(MemBudget::from_mib(m).unwrap());
    assert!(check_unified_budget(&root, true, mib(6095)).is_ok());
    let e = check_unified_budget(&root, true, mib(6096)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(msg.contains("80 %") && msg.contains("7620 MiB"), "{msg}");
    assert_eq!(msg.lines().count(), 1);
    // not unified memory, or no budget: nothing is checked (nor read)
    assert!(check_unified_budget(&root, false, mib(100_000)).is_ok());
    assert!(check_unified_budget(&root, true, None).is_ok());
    let nothing = HostRoot::new(&fixtures().join("desktop/proc")).unwrap();
    assert!(check_unified_budget(&nothing, false, mib(6096)).is_ok());
    // unified memory without a readable meminfo is an error, not a pass
    assert!(check_unified_budget(&nothing, true, mib(10)).is_err());
}

#[test]
fn the_host_report_reads_under_the_root() {
    let root = HostRoot::new(&fixtures().join("orin_nano")).unwrap();
    let r = probe(&candle_core::Device::Cpu, &root).unwrap();
    let info = r.host.jetson_info.clone().expect("a Jetson");
    assert_eq!(info.nvpmodel.as_deref(), Some("1 (7W)"));
    assert_eq!(info.emc_freq_hz, Some(2_133_000_000));
    assert_eq!(r.host.total_ram_bytes, Some(7_802_880 * 1024));
    assert!(r.host.jetson.as_deref().unwrap().contains("Orin Nano"));
    assert_eq!(r.host.host_root, root.path());
    let desktop = HostRoot::new(&fixtures().join("desktop")).unwrap();
    let r = probe(&candle_core::Device::Cpu, &desktop).unwrap();
    assert!(r.host.jetson_info.is_none() && r.host.jetson.is_none());
    assert_eq!(r.host.total_ram_bytes, Some(32_000_000 * 1024));
}

#[test]
fn phase_sampling_labels_each_process_and_summarises_it() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let root = HostRoot::new(&fixtures().join("orin_nano")).unwrap();
    let empty = std::env::join_paths([d.path().join("no-bin")]).unwrap();
    // off Jetson: nothing
    let desktop = HostRoot::new(&fixtures().join("desktop")).unwrap();
    assert!(PhaseSampling::new(
        &desktop,
        Some(empty.as_os_str()),
        Duration::from_millis(10),
        &out
    )
    .is_none());
    let mut s = PhaseSampling::new(
        &root,
        Some(empty.as_os_str()),
        Duration::from_millis(10),
        &out,
    )
    .unwrap();
    assert_eq!(s.tegrastats(), None);
    // a samples file of an earlier run is replaced
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(SAMPLES_CSV), "old\n").unwrap();
    assert_eq!(s.sample(Some("a_points"), || Ok(7)).unwrap(), 7);
    let e = s
        .sample(Some("a_bbox"), || -> vosbench::Result<()> {
            Err(vosbench::Error::Input("boom".into()))
        })
        .unwrap_err();
    assert!(e.to_string().contains("boom"), "{e}");
    let device: DeviceInfo = serde_json::from_value(serde_json::json!({
        "device": "cpu", "name": "cpu", "compute_capability": null, "total_bytes": null,
        "free_bytes": null, "unified_memory": false, "memory_pool": false, "jetson": null,
        "system_total_bytes": 0, "system_available_bytes": 0, "notes": []
    }))
    .unwrap();
    let c = s.capture(&device);
    assert_eq!(c.samples_csv.as_deref(), Some(SAMPLES_CSV));
    assert!(c.driver_cuda_version.is_none() && c.cudnn_version.is_none());
    assert_eq!(c.info.l4t.as_deref(), Some("36.3.0"));
    let phases: Vec<&str> = c.sampling.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(phases, ["inference/a_points", "inference/a_bbox"]);
    for p in &c.sampling {
        assert_eq!(p.summary.source, "procfs");
        assert_eq!(p.summary.peak_ram_used_MiB, Some(4548));
    }
    let text = std::fs::read_to_string(out.join(SAMPLES_CSV)).unwrap();
    assert!(!text.contains("old"));
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let n = |label: &str| {
        rows.iter()
            .filter(|r| r.split(',').nth(1) == Some(label))
            .count()
    };
    assert_eq!(n("inference/a_points"), c.sampling[0].summary.samples);
    assert_eq!(n("inference/a_bbox"), c.sampling[1].summary.samples);
    assert_eq!(rows.len(), n("inference/a_points") + n("inference/a_bbox"));
    // the summary.json shape: the capture's fields flattened beside the board's
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["nvpmodel"], "1 (7W)");
    assert_eq!(v["sampling"][1]["model"], "a_bbox");
    assert_eq!(v["sampling"][0]["peak_ram_used_MiB"], 4548);
}

#[test]
fn the_sample_interval_is_range_checked() {
    assert_eq!(sample_interval(10).unwrap(), Duration::from_millis(10));
    assert_eq!(sample_interval(600_000).unwrap(), Duration::from_secs(600));
    for bad in [0, 9, 600_001] {
        let e = sample_interval(bad).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("10 to 600000"), "{e}");
    }
}
