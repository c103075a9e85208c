//! `vosbench bench --demo --random-weights --device cpu` end to end on a tiny synthetic split
//! with the small EdgeTAM test variant: the CSV schema, resume after the inference process is
//! killed between rows (no duplicate, no finished row lost or recomputed), phase B in other
//! processes than phase A (also one per model with --isolate-models), and bad input failing with
//! exit code 2 without touching earlier results.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const COLUMNS: &str = "video,object,model,imgsz,precision,prompt,prompt_frame,frames,processed_end_frame,scored_frames,fps,fps_steady,latency_ms,latency_p50_ms,latency_p90_ms,latency_p99_ms,gpu_peak_alloc_MiB,gpu_peak_reserved_MiB,cpu_peak_rss_MiB,system_peak_MiB,mem_budget_MiB,baseline_rss_MiB,baseline_gpu_MiB,J,F,JandF,overlay,setup_ms,input_H,input_W,infer_H,infer_W,cudnn_benchmark,weights,status,error";

pub(crate) fn variant() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models/edgetam_test.json")
        .display()
        .to_string()
}

pub(crate) fn base_args(out: &Path) -> Vec<String> {
    let v = variant();
    [
        "bench",
        "--demo",
        "--random-weights",
        "--device",
        "cpu",
        "--models",
        &format!("{v}_points,{v}_bbox"),
        "--imgsz",
        "256",
        "--demo-videos",
        "2",
        "--demo-frames",
        "8",
        "--limit-objects",
        "1",
        "--max-clip-frames",
        "6",
        "--demo-size",
        "160x120",
        "--warmup-frames",
        "2",
        "--quiet",
        "--out-dir",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub(crate) fn cmd(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vosbench"));
    c.args(args);
    c
}

pub(crate) fn run_ok(args: &[String]) -> u32 {
    let child = cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vosbench");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "vosbench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pid
}

pub(crate) fn read_csv(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").to_string();
    let mut r = csv::Reader::from_path(path).unwrap();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

pub(crate) fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn demo_runs_in_two_processes_and_resumes_after_a_kill() {
    let t0 = Instant::now();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out with space");
    let args = base_args(&out);
    let csv_path = out.join("vosbench_summary.csv");
    let col = |name: &str| COLUMNS.split(',').position(|c| c == name).unwrap();

    // Phase A alone.
    let mut a = args.clone();
    a.push("--skip-inference".into());
    let setup_pid = run_ok(&a);
    let pre = out.join("preprocessed");
    let cfg = json(&pre.join("inference_config.json"));
    assert_eq!(cfg["setup_pid"].as_u64(), Some(setup_pid as u64));
    assert_eq!(cfg["models"].as_array().unwrap().len(), 2);
    assert_eq!(cfg["options"]["memory_fence"], "auto");
    assert_eq!(cfg["options"]["cuda_graph"], "auto");
    let meta = json(&pre.join("metadata.json"));
    let videos = meta["videos"].as_array().unwrap();
    assert_eq!(videos.len(), 2);
    let n_objects: usize = videos
        .iter()
        .map(|v| v["objects"].as_array().unwrap().len())
        .sum();
    let total_rows = 2 * n_objects;
    assert!(!csv_path.exists(), "setup alone writes no results");

    // Phase B, killed after its first finished row (rows are 1.5 s apart).
    let mut b = args.clone();
    b.push("--skip-setup".into());
    let mut child = cmd(&b)
        .env("VOSBENCH_ROW_DELAY_MS", "1500")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let first_rows = loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("phase B exited ({st}) before it could be killed");
        }
        if csv_path.exists() {
            let (_, rows) = read_csv(&csv_path);
            if !rows.is_empty() {
                break rows;
            }
        }
        assert!(Instant::now() < deadline, "no row after 90 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let (header, killed_rows) = read_csv(&csv_path);
    assert_eq!(header, COLUMNS);
    assert!(!killed_rows.is_empty() && killed_rows.len() < total_rows);
    assert!(killed_rows.len() <= first_rows.len() + 1);

    // Re-run the whole command: setup again (cache reused), inference resumes, one process per
    // model.
    let mut c = args.clone();
    c.push("--isolate-models".into());
    let pid = run_ok(&c);
    let (header, rows) = read_csv(&csv_path);
    assert_eq!(header, COLUMNS);
    assert_eq!(rows.len(), total_rows, "one row per (video, object, model)");
    let keys: BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(keys.len(), total_rows, "no duplicate rows");
    for k in &killed_rows {
        assert!(
            rows.contains(k),
            "the row finished before the kill was kept unchanged: {k:?}"
        );
    }
    for r in &rows {
        assert_eq!(r[col("status")], "ok", "{r:?}");
        let fps: f64 = r[col("fps")].parse().unwrap();
        assert!(fps > 0.0);
        let p50: f64 = r[col("latency_p50_ms")].parse().unwrap();
        let p99: f64 = r[col("latency_p99_ms")].parse().unwrap();
        assert!(p50 > 0.0 && p99 >= p50);
        let rss: f64 = r[col("cpu_peak_rss_MiB")].parse().unwrap();
        assert!(rss > 1.0);
        let frames: usize = r[col("frames")].parse().unwrap();
        let pf: usize = r[col("prompt_frame")].parse().unwrap();
        assert_eq!(frames, 6.min(8 - pf));
        assert_eq!(r[col("processed_end_frame")], (pf + frames).to_string());
        assert!(r[col("weights")].starts_with("random"));
        assert_eq!(r[col("infer_H")], "256");
        assert_eq!(
            (r[col("input_W")].as_str(), r[col("input_H")].as_str()),
            ("160", "120")
        );
        assert!(
            r[col("gpu_peak_alloc_MiB")].is_empty(),
            "no device figure on CPU"
        );
        if let Ok(jf) = r[col("JandF")].parse::<f64>() {
            assert!((0.0..=1.0).contains(&jf));
        }
    }
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["setup_pid"].as_u64(), Some(pid as u64));
    let inf: Vec<u64> = summary["inference_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(inf.len(), 2, "one inference process per model");
    assert!(inf
        .iter()
        .all(|&p| p != pid as u64 && p != setup_pid as u64));
    assert_ne!(inf[0], inf[1]);
    assert_eq!(summary["accuracy_meaningful"], Value::Bool(false));
    assert_eq!(summary["models"].as_array().unwrap().len(), 2);
    eprintln!("bench demo test took {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn bad_input_exits_2_and_keeps_results() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let csv_path = out.join("vosbench_summary.csv");
    std::fs::write(&csv_path, "earlier results\n").unwrap();
    let check = |args: Vec<String>, want: &str| {
        let o = cmd(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
        assert!(err.contains(want), "{err}");
        assert_eq!(
            std::fs::read_to_string(&csv_path).unwrap(),
            "earlier results\n"
        );
    };
    let mut a = base_args(&out);
    let m = a.iter().position(|s| s == "--models").unwrap();
    a[m + 1] = "edgetam_segment".into();
    check(a, "edgetam_segment");
    let mut a = base_args(&out);
    a.retain(|s| s != "--demo");
    a.extend([
        "--split-dir".into(),
        d.path().join("nope").display().to_string(),
    ]);
    check(a, "does not exist");
    let mut a = base_args(&out);
    a.extend(["--mem-budget-mb".into(), "1".into()]);
    check(a, "budget");
    let mut a = base_args(&out);
    a.extend(["--memory-fence".into(), "neck,sometimes".into()]);
    check(a, "unknown point 'sometimes'");
    let mut a = base_args(&out);
    a.extend(["--cuda-graph".into(), "sometimes".into()]);
    check(a, "--cuda-graph 'sometimes'");
}

/// A budget that holds at setup but is crossed while tracking: every (video, object, model) row
/// stops with `budget_exceeded` and the frame it stopped on, and the run goes on to the next row
/// and exits normally. Setup's budget is generous; the inference config is then given a budget
/// below what the inference process needs once it has loaded a model (the CPU figure is the
/// process RSS), which is exactly the state of a run whose prediction was too optimistic.
#[test]
fn budget_crossed_while_tracking_fails_rows_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let mut a = base_args(&out);
    a.extend(["--mem-budget-mb".into(), "100000".into()]);
    let mut setup = a.clone();
    setup.push("--skip-inference".into());
    run_ok(&setup);
    let cfg_path = out.join("preprocessed").join("inference_config.json");
    let mut cfg = json(&cfg_path);
    assert_eq!(cfg["budget_figure"], "process_rss");
    assert!(cfg["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["fits_budget"] == true));
    // 8 MiB: below any process that has loaded a model and a frame.
    cfg["options"]["mem_budget_bytes"] = Value::from(8u64 << 20);
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let mut infer = a.clone();
    infer.push("--skip-setup".into());
    run_ok(&infer);
    let (header, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert_eq!(header, COLUMNS);
    let col = |name: &str| COLUMNS.split(',').position(|c| c == name).unwrap();
    assert!(!rows.is_empty());
    let n_models = 2;
    assert_eq!(rows.len() % n_models, 0, "every model has its rows");
    for r in &rows {
        assert_eq!(r[col("status")], "budget_exceeded", "{r:?}");
        let e = &r[col("error")];
        assert!(
            e.contains("process_rss used")
                && e.contains("on frame")
                && e.contains("8.0 MiB budget"),
            "{e}"
        );
        assert_eq!(r[col("mem_budget_MiB")], "8.0");
    }
    let summary = json(&out.join("summary.json"));
    assert!(summary.is_object());
}

/// Phase B takes its settings from `inference_config.json`: an unknown value there (a budget
/// figure, a precision) or a field this version does not know is a one-line error with exit
/// code 2, never a fallback, and no results are written.
#[test]
fn unknown_values_in_the_inference_config_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let a = base_args(&out);
    let mut setup = a.clone();
    setup.push("--skip-inference".into());
    run_ok(&setup);
    let cfg_path = out.join("preprocessed").join("inference_config.json");
    let good = json(&cfg_path);
    let mut infer = a.clone();
    infer.push("--skip-setup".into());
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit, &str); 4] = [
        (
            "budget figure",
            |c| c["budget_figure"] = "bogus".into(),
            "bogus",
        ),
        (
            "precision",
            |c| c["options"]["precision"] = "f64".into(),
            "f64",
        ),
        (
            "fence",
            |c| c["options"]["memory_fence"] = "lunch".into(),
            "lunch",
        ),
        (
            "old budget field",
            |c| c["budget_bytes"] = Value::from(8u64 << 20),
            "budget_bytes",
        ),
    ];
    for (what, edit, want) in edits {
        let mut cfg = good.clone();
        edit(&mut cfg);
        std::fs::write(&cfg_path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
        let o = cmd(&infer).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{what}: one-line error: {err}"
        );
        assert!(
            err.contains("inference_config.json") && err.contains(want),
            "{what}: {err}"
        );
        assert!(
            !out.join("vosbench_summary.csv").exists(),
            "{what}: no results from a bad config"
        );
    }
}
