//! The Jetson capture end to end, on fake machine trees (no Jetson here): `vosbench bench --demo
//! --random-weights --device cpu` with `--host-root` at tests/fixtures/jetson/orin_nano (an Orin
//! Nano 8 GB on L4T 36.3, nvpmodel mode 1, clocks not pinned) records the board in summary.json's
//! `jetson` object and samples phase B into jetson_samples.csv, from a stand-in `tegrastats`
//! (a script printing two recorded Orin Nano lines) or, without one, from the tree's
//! /proc/meminfo and sysfs GPU load; the unified-memory budget rule refuses a budget above 80 %
//! of MemTotal before anything is written; `--sample-interval-ms` is range-checked; off Jetson
//! (tests/fixtures/jetson/desktop) `jetson` is null and nothing is sampled; `vosbench probe`
//! reports the board. No assertion depends on how long anything takes.

use super::bench_demo::{base_args, cmd, json};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jetson")
}

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

/// The two Orin Nano lines of the recorded tegrastats fixture (RAM 3012 and 4100 of 7620 MB,
/// GR3D 41 % and 0 %).
fn orin_nano_lines() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("tegrastats.txt")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    vec![lines[0].clone(), lines[3].clone()]
}

/// A fake Orin Nano root in `d`; with `tegrastats`, a stand-in program at usr/bin/tegrastats
/// that prints the recorded lines and then waits to be stopped, as the real one does.
fn orin_root(d: &Path, tegrastats: bool) -> PathBuf {
    let root = d.join("root");
    copy_tree(&fixtures().join("orin_nano"), &root);
    if tegrastats {
        let lines = root.join("recorded.txt");
        std::fs::write(&lines, orin_nano_lines().join("\n") + "\n").unwrap();
        let prog = root.join("usr/bin/tegrastats");
        std::fs::create_dir_all(prog.parent().unwrap()).unwrap();
        std::fs::write(
            &prog,
            format!("#!/bin/sh\ncat '{}'\nexec sleep 60\n", lines.display()),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    root
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn run(args: &[String], path: Option<&Path>) -> Output {
    let mut c = cmd(args);
    c.env_remove("VOSBENCH_HOST_ROOT");
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "vosbench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The sample rows of a phase: (ram_used, ram_total, swap_used, gpu_load) and the source.
fn rows_of(csv: &Path, phase: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header[..3], ["t_unix_s", "phase", "source"]);
    assert_eq!(header[3], "ram_used_MiB");
    assert_eq!(header[9], "gpu_load_pct");
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect::<Vec<_>>())
        .filter(|row| row[1] == phase)
        .collect()
}

fn assert_orin_nano_board(j: &Value) {
    assert_eq!(
        j["model"],
        "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    );
    assert_eq!(j["l4t"], "36.3.0");
    assert_eq!(j["jetpack"], "6.0");
    assert_eq!(j["soc"], "Tegra 234");
    assert_eq!(j["nvpmodel"], "1 (7W)");
    assert_eq!(j["jetson_clocks"], false);
    assert_eq!(j["gpu_freq_hz"], 624_750_000u64);
    assert_eq!(j["gpu_max_freq_hz"], 624_750_000u64);
    assert_eq!(j["emc_freq_hz"], 2_133_000_000u64);
    // a CPU run loads no CUDA driver nor cuDNN
    assert!(j["driver_cuda_version"].is_null() && j["cudnn_version"].is_null());
}

#[test]
fn jetson_tegrastats_samples_each_isolated_model_and_summary_records_the_board() {
    let d = tempfile::tempdir().unwrap();
    let root = orin_root(d.path(), true);
    let out = d.path().join("out");
    let args = with(
        base_args(&out),
        &[
            "--isolate-models",
            "--host-root",
            root.to_str().unwrap(),
            "--sample-interval-ms",
            "50",
        ],
    );
    let o = run(&args, None);
    ok(&o);
    let s = json(&out.join("summary.json"));
    // the launcher still opened no device
    assert_eq!(s["processes"]["launcher_devices_opened"], 0);
    let j = &s["jetson"];
    assert_orin_nano_board(j);
    assert_eq!(j["sample_interval_ms"], 50);
    assert_eq!(j["samples_csv"], "jetson_samples.csv");
    assert_eq!(
        j["tegrastats"].as_str(),
        Some(root.join("usr/bin/tegrastats").to_str().unwrap())
    );
    let models: Vec<String> = s["model_setup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models.len(), 2);
    let sampling = j["sampling"].as_array().unwrap();
    assert_eq!(sampling.len(), 2, "one entry per inference process: {j}");
    let csv = out.join("jetson_samples.csv");
    for (p, m) in sampling.iter().zip(&models) {
        let phase = format!("inference/{m}");
        assert_eq!(p["phase"], phase.as_str());
        assert_eq!(p["model"], m.as_str());
        assert_eq!(p["source"], "tegrastats");
        assert!(p["error"].is_null(), "{p}");
        let rows = rows_of(&csv, &phase);
        assert!(!rows.is_empty(), "no samples of {phase}");
        assert_eq!(p["samples"].as_u64(), Some(rows.len() as u64));
        // the first recorded line: RAM 3012/7620MB, SWAP 200/3810MB, GR3D 41%@[624]
        assert_eq!(rows[0][2], "tegrastats");
        assert_eq!(rows[0][3..7], ["3012", "7620", "200", "3810"]);
        assert_eq!(rows[0][9], "41");
        // the summary's peak and mean are those of the process's own rows
        let peak = rows.iter().map(|r| r[3].parse::<u64>().unwrap()).max();
        assert_eq!(p["peak_ram_used_MiB"].as_u64(), peak);
        let loads: Vec<f64> = rows.iter().map(|r| r[9].parse().unwrap()).collect();
        let mean = loads.iter().sum::<f64>() / loads.len() as f64;
        assert!((p["mean_gpu_load_pct"].as_f64().unwrap() - mean).abs() < 1e-9);
    }
    let total: usize = models
        .iter()
        .map(|m| rows_of(&csv, &format!("inference/{m}")).len())
        .sum();
    assert_eq!(
        total,
        csv::Reader::from_path(&csv).unwrap().records().count()
    );
}

#[test]
fn jetson_without_tegrastats_samples_procfs_for_the_phase_within_the_unified_budget() {
    let d = tempfile::tempdir().unwrap();
    let root = orin_root(d.path(), false);
    let out = d.path().join("out");
    let no_bin = d.path().join("no-bin");
    std::fs::create_dir_all(&no_bin).unwrap();
    // 6000 MiB is within 80 % of the tree's 7620 MiB: accepted
    let args = with(
        base_args(&out),
        &[
            "--host-root",
            root.to_str().unwrap(),
            "--mem-budget-mb",
            "6000",
        ],
    );
    let o = run(&args, Some(no_bin.as_path()));
    ok(&o);
    let s = json(&out.join("summary.json"));
    assert_eq!(s["mem_budget_MiB"].as_f64(), Some(6000.0));
    let j = &s["jetson"];
    assert_orin_nano_board(j);
    assert!(j["tegrastats"].is_null(), "{j}");
    assert_eq!(j["sample_interval_ms"], 500);
    let sampling = j["sampling"].as_array().unwrap();
    assert_eq!(sampling.len(), 1, "one inference process for both models");
    let p = &sampling[0];
    assert_eq!(p["phase"], "inference");
    assert!(p["model"].is_null());
    assert_eq!(p["source"], "procfs");
    // MemTotal - MemAvailable of the tree: 7802880 - 3145728 kB = 4548 MiB; GPU load 412 per mille
    assert_eq!(p["peak_ram_used_MiB"], 4548);
    assert!((p["mean_gpu_load_pct"].as_f64().unwrap() - 41.2).abs() < 1e-9);
    let rows = rows_of(&out.join("jetson_samples.csv"), "inference");
    assert!(!rows.is_empty());
    assert_eq!(p["samples"].as_u64(), Some(rows.len() as u64));
    for r in &rows {
        assert_eq!(r[2], "procfs");
        assert_eq!(r[3..7], ["4548", "7620", "200", "3810"]);
        assert_eq!(r[9], "41.2");
    }
}

#[test]
fn jetson_key_is_null_off_jetson_and_the_unified_rule_does_not_apply() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let desktop = fixtures().join("desktop");
    // 30000 MiB is above 80 % of the desktop tree's 31250 MiB: refused only on unified memory
    let args = with(
        base_args(&out),
        &[
            "--host-root",
            desktop.to_str().unwrap(),
            "--mem-budget-mb",
            "30000",
        ],
    );
    ok(&run(&args, None));
    let s = json(&out.join("summary.json"));
    assert!(s.as_object().unwrap().contains_key("jetson"));
    assert!(s["jetson"].is_null());
    assert!(!out.join("jetson_samples.csv").exists());
}

fn refused(args: &[String], env_root: Option<&Path>, want: &str, out: &Path) {
    let mut c = cmd(args);
    c.env_remove("VOSBENCH_HOST_ROOT");
    if let Some(r) = env_root {
        c.env("VOSBENCH_HOST_ROOT", r);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(err.contains(want), "{err}");
    assert!(!out.exists(), "{} was created", out.display());
}

#[test]
fn jetson_budget_above_80_percent_and_bad_intervals_exit_2_writing_nothing() {
    let d = tempfile::tempdir().unwrap();
    let root = orin_root(d.path(), false);
    let out = d.path().join("out");
    let r = root.to_str().unwrap();
    // 7000 MiB of the tree's 7620 MiB: above 80 %
    let budget = with(
        base_args(&out),
        &["--host-root", r, "--mem-budget-mb", "7000"],
    );
    refused(&budget, None, "80 % of this machine's 7620 MiB", &out);
    // the same through VOSBENCH_HOST_ROOT (read once at the CLI edge)
    let budget_env = with(base_args(&out), &["--mem-budget-mb", "7000"]);
    refused(
        &budget_env,
        Some(root.as_path()),
        "80 % of this machine's 7620 MiB",
        &out,
    );
    // setup-only runs are refused the same way
    let setup_only = with(budget.clone(), &["--skip-inference"]);
    refused(&setup_only, None, "80 %", &out);
    for bad in ["5", "9", "600001"] {
        let a = with(
            base_args(&out),
            &["--host-root", r, "--sample-interval-ms", bad],
        );
        refused(&a, None, "--sample-interval-ms", &out);
    }
    let a = with(
        base_args(&out),
        &["--host-root", d.path().join("nowhere").to_str().unwrap()],
    );
    refused(&a, None, "host root", &out);
}

#[test]
fn jetson_probe_reports_the_board_in_text_and_json() {
    let d = tempfile::tempdir().unwrap();
    let root = orin_root(d.path(), false);
    let path = d.path().join("probe.json");
    let args: Vec<String> = [
        "probe",
        "--device",
        "cpu",
        "--host-root",
        root.to_str().unwrap(),
        "--json",
        path.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = run(&args, None);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    let line = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("no {k} line in\n{text}"))
            .to_string()
    };
    assert!(line("Jetson module").contains("Orin Nano"));
    assert!(line("L4T / JetPack").ends_with("36.3.0 / 6.0"));
    assert!(line("nvpmodel mode").ends_with("1 (7W)"));
    assert!(line("jetson_clocks").ends_with("off"));
    assert!(line("GPU clock").contains("624.8 MHz (min 306.0 MHz, max 624.8 MHz)"));
    assert!(line("EMC clock").ends_with("2133.0 MHz"));
    assert!(line("host RAM total").contains("7620 MiB"));
    let v = json(&path);
    let j = &v["host"]["jetson_info"];
    assert_orin_nano_board(&serde_json::json!({
        "model": j["model"], "l4t": j["l4t"], "jetpack": j["jetpack"], "soc": j["soc"],
        "nvpmodel": j["nvpmodel"], "jetson_clocks": j["jetson_clocks"],
        "gpu_freq_hz": j["gpu_freq_hz"], "gpu_max_freq_hz": j["gpu_max_freq_hz"],
        "emc_freq_hz": j["emc_freq_hz"], "driver_cuda_version": v["driver_cuda_version"],
        "cudnn_version": v["cudnn_version"],
    }));
    assert_eq!(v["host"]["host_root"].as_str(), root.to_str());
    // the desktop tree: no Jetson
    let args: Vec<String> = [
        "probe",
        "--device",
        "cpu",
        "--host-root",
        fixtures().join("desktop").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = run(&args, None);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("nvpmodel"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with("Jetson") && l.ends_with("no")));
}
