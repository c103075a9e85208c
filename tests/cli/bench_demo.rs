//! `vosbench bench --demo --random-weights --device cpu` end to end on a tiny synthetic split
//! with the small EdgeTAM test variant: the CSV schema, resume after the inference process is
//! killed between rows (no duplicate, no finished row lost or recomputed), the launcher that
//! opens no device and runs phase A, then phase B in fresh processes (one per model with
//! --isolate-models), and bad input failing with exit code 2 without touching earlier results.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const COLUMNS: &str = "video,object,model,imgsz,precision,prompt,prompt_frame,frames,processed_end_frame,scored_frames,fps,fps_steady,latency_ms,latency_p50_ms,latency_p90_ms,latency_p99_ms,gpu_peak_alloc_MiB,gpu_peak_reserved_MiB,cpu_peak_rss_MiB,system_peak_MiB,mem_budget_MiB,baseline_rss_MiB,baseline_gpu_MiB,J,F,JandF,overlay,setup_ms,input_H,input_W,infer_H,infer_W,cudnn_benchmark,weights,status,error,session_mode,session_objects,session_fps,object_frames_per_s,input_fps,input_frame_stride,annotation_stride_frames,JandF_proxy";

pub(crate) fn variant() -> String {
    test_variant("edgetam_test")
}

fn test_variant(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/models/{name}.json"))
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
    // The command started is a launcher: setup ran in a child of it, and the launcher opened no
    // device (the device layer counts every open; setup's own count shows the counter counts).
    assert_eq!(summary["launcher_pid"].as_u64(), Some(pid as u64));
    let procs = &summary["processes"];
    assert_eq!(procs["launcher_pid"].as_u64(), Some(pid as u64));
    assert_eq!(procs["launcher_devices_opened"].as_u64(), Some(0));
    let setup_child = summary["setup_pid"].as_u64().unwrap();
    assert_eq!(procs["setup"]["pid"].as_u64(), Some(setup_child));
    assert_ne!(setup_child, pid as u64);
    let cfg = json(&pre.join("inference_config.json"));
    assert_eq!(cfg["setup_pid"].as_u64(), Some(setup_child));
    assert!(cfg["setup_devices_opened"].as_u64().unwrap() >= 1);
    let setup_exit = procs["setup"]["exited_unix_s"].as_f64().unwrap();
    assert!(setup_exit >= procs["setup"]["started_unix_s"].as_f64().unwrap());
    let phase_b = procs["inference"].as_array().unwrap();
    assert_eq!(phase_b.len(), 2);
    let mut after = setup_exit;
    for p in phase_b {
        let (start, exit) = (
            p["started_unix_s"].as_f64().unwrap(),
            p["exited_unix_s"].as_f64().unwrap(),
        );
        assert!(
            start >= after,
            "each inference process starts after the previous process exited: {procs}"
        );
        after = exit;
        assert_eq!(p["exit_code"].as_i64(), Some(0));
        assert_ne!(p["pid"].as_u64(), Some(setup_child));
    }
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
    // Weights are the variant's state dict at the run's dtype (f32 here), also for random
    // weights (a resident-memory difference used to read 0.0 there).
    let cfg_v = vosbench::config::ModelConfig::from_file(Path::new(&variant()))
        .and_then(|c| c.with_image_size(256))
        .unwrap();
    let numel: usize = vosbench::weights::expected_tensors(&cfg_v)
        .unwrap()
        .iter()
        .map(|t| t.numel())
        .sum();
    for m in summary["model_setup"].as_array().unwrap() {
        let got = m["weights_MiB"].as_f64().unwrap();
        // summary.json rounds MiB to one decimal (results::mib)
        let want = ((numel * 4) as f64 / 1048576.0 * 10.0).round() / 10.0;
        assert!(
            (got - want).abs() < 1e-9,
            "weights_MiB {got} against {want}"
        );
    }
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

/// The official VOS protocol on the demo split: `_mask` models (the ground-truth mask on each
/// object's first annotated frame) run one session per video with all its objects; one row per
/// (video, object, model) with the session columns filled; and each row's J and F equal what the
/// evaluator (the official SA-V evaluator's rules, src/eval) computes on the PNGs the benchmark
/// wrote with --save-masks.
#[test]
fn mask_protocol_runs_a_session_per_video_and_its_jf_equals_the_evaluator() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let (e, s) = (test_variant("edgetam_test"), test_variant("sam2.1_test"));
    let mut args = base_args(&out);
    let m = args.iter().position(|a| a == "--models").unwrap();
    args[m + 1] = format!("{e}_mask,{s}_mask");
    // every object, the whole video (no clip), 16 frames: annotations on 0, 4, 8, 12
    for flag in ["--limit-objects", "--max-clip-frames"] {
        let i = args.iter().position(|a| a == flag).unwrap();
        args.drain(i..i + 2);
    }
    let i = args.iter().position(|a| a == "--demo-frames").unwrap();
    args[i + 1] = "16".into();
    args.push("--save-masks".into());
    run_ok(&args);

    let meta = json(&out.join("preprocessed/metadata.json"));
    let objects_of = |video: &str| -> usize {
        meta["videos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == video)
            .map(|v| v["objects"].as_array().unwrap().len())
            .unwrap()
    };
    let n_objects: usize = meta["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["objects"].as_array().unwrap().len())
        .sum();
    assert!(
        meta["videos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["objects"].as_array().unwrap().len() > 1),
        "the demo split has videos with several objects"
    );
    let (header, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert_eq!(header, COLUMNS);
    assert_eq!(
        rows.len(),
        2 * n_objects,
        "one row per (video, object, model)"
    );
    let col = |name: &str| COLUMNS.split(',').position(|c| c == name).unwrap();
    let models: BTreeSet<String> = rows.iter().map(|r| r[col("model")].clone()).collect();
    assert_eq!(models.len(), 2);
    let mut scored = 0;
    for r in &rows {
        assert_eq!(r[col("status")], "ok", "{r:?}");
        assert!(r[col("model")].ends_with("_mask"));
        assert_eq!(r[col("prompt")], "mask:ground_truth");
        assert_eq!(r[col("session_mode")], "all");
        assert_eq!(
            r[col("session_objects")],
            objects_of(&r[col("video")]).to_string()
        );
        assert_eq!(r[col("session_fps")], r[col("fps")]);
        let fps: f64 = r[col("session_fps")].parse().unwrap();
        let ofps: f64 = r[col("object_frames_per_s")].parse().unwrap();
        assert!(fps > 0.0 && ofps >= fps, "{fps} {ofps}");
        // the session's figures: the same on every row of the video
        for other in rows
            .iter()
            .filter(|o| o[col("video")] == r[col("video")] && o[col("model")] == r[col("model")])
        {
            for c in ["fps", "setup_ms", "cpu_peak_rss_MiB", "object_frames_per_s"] {
                assert_eq!(other[col(c)], r[col(c)], "{c}");
            }
        }
        if !r[col("J")].is_empty() {
            scored += 1;
        }
    }
    assert!(scored > 0, "some object is scored");

    let gt = out.join("demo_split/Annotations_6fps");
    for model in &models {
        let report = vosbench::eval::evaluate_dirs(
            &gt,
            &out.join("masks").join(model),
            &vosbench::eval::EvalOptions {
                skip_first_and_last: true,
                strict: true,
                threads: 1,
            },
        )
        .unwrap();
        let mut compared = 0;
        for o in &report.objects {
            let r = rows
                .iter()
                .find(|r| {
                    r[col("model")] == *model
                        && r[col("video")] == o.sequence
                        && r[col("object")] == o.object.name()
                })
                .unwrap_or_else(|| panic!("no row for {} {}", o.sequence, o.object.name()));
            for (c, want) in [("J", o.score.j / 100.0), ("F", o.score.f / 100.0)] {
                let got: f64 = r[col(c)].parse().unwrap();
                assert!(
                    (got - want).abs() <= 5.1e-5,
                    "{model} {} {} {c}: CSV {got}, evaluator {want}",
                    o.sequence,
                    o.object.name()
                );
            }
            compared += 1;
        }
        assert_eq!(
            compared,
            scored / 2,
            "{model}: every scored row was evaluated"
        );
    }
}

/// The original harness's spellings: every flag in snake_case, the integer boolean
/// `--save_overlays 1` / `0`, `--autocast_dtype`, `--seed` implying the shuffle, `--test_mode`,
/// and the frame strides, whose effect shows in the new columns.
#[test]
fn the_original_snake_case_flags_work() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let pre = d.path().join("pre");
    let v = variant();
    let s = |x: &str| x.to_string();
    let common = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "bench",
            "--random_weights",
            "--device",
            "cpu",
            "--models",
            &format!("{v}_points"),
            "--weights_dir",
            &d.path().join("w").display().to_string(),
            "--imgsz",
            "256",
            "--workspace_mb",
            "64",
            "--max_frames_in_mem",
            "50",
            "--max_clip_frames",
            "7",
            "--warmup_frames",
            "1",
            "--mem_budget_mb",
            "100000",
            "--out_dir",
            &out.display().to_string(),
            "--quiet",
        ]
        .iter()
        .map(|x| s(x))
        .collect();
        a.extend(extra.iter().map(|x| s(x)));
        a
    };
    // 1: the smoke test of the original, shuffled, strided, with overlays.
    let pre1 = pre.join("one").display().to_string();
    run_ok(&common(&[
        "--test_mode",
        "--shuffle_videos",
        "--save_overlays",
        "1",
        "--autocast_dtype",
        "float32",
        "--disable_cudnn",
        "--annotation_stride_frames",
        "4",
        "--input_frame_stride",
        "2",
        "--limit_videos",
        "1",
        "--limit_objects",
        "1",
        "--isolate_models",
        "--preprocessed_dir",
        &pre1,
    ]));
    let cfg = json(&Path::new(&pre1).join("inference_config.json"));
    let o = &cfg["options"];
    assert_eq!(o["test_mode"], true);
    assert_eq!(o["save_overlays"], true);
    assert_eq!(o["disable_cudnn"], true);
    assert_eq!(o["shuffle_videos"], true);
    assert_eq!(o["precision"], "f32");
    assert_eq!(o["imgsz"], 256);
    assert_eq!(
        (o["limit_videos"].as_u64(), o["limit_objects"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(cfg["cudnn_note"]
        .as_str()
        .unwrap()
        .contains("--disable-cudnn"));
    let meta = json(&Path::new(&pre1).join("metadata.json"));
    assert!(
        meta["shuffle_seed"].is_u64(),
        "a drawn seed is recorded: {meta}"
    );
    let order = meta["video_order"].as_array().unwrap();
    assert_eq!(order.len(), 1);
    assert_eq!(order[0], meta["videos"][0]["name"]);
    let (header, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert_eq!(header, COLUMNS);
    let col = |name: &str| COLUMNS.split(',').position(|c| c == name).unwrap();
    assert_eq!(rows.len(), 1, "test mode: 1 video, 1 object");
    let r = &rows[0];
    assert_eq!(r[col("status")], "ok", "{r:?}");
    assert_eq!(r[col("input_frame_stride")], "2");
    assert_eq!(r[col("input_fps")], "12.0");
    assert_eq!(r[col("annotation_stride_frames")], "4");
    assert_eq!(r[col("JandF_proxy")], r[col("JandF")]);
    let pf: usize = r[col("prompt_frame")].parse().unwrap();
    let end: usize = r[col("processed_end_frame")].parse().unwrap();
    assert_eq!(r[col("frames")], (end - pf).div_ceil(2).to_string());
    let overlays = PathBuf::from(&r[col("overlay")]);
    let written: BTreeSet<String> = std::fs::read_dir(&overlays)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let fed: BTreeSet<String> = (pf..end)
        .step_by(2)
        .map(|f| format!("{f:05}.png"))
        .collect();
    assert_eq!(written, fed, "overlays of the fed frames only");

    // 2: the split by its path and list, --seed alone shuffles, --save_overlays 0, setup only.
    let split = out.join("demo_split");
    let first = meta["videos"][0]["name"].as_str().unwrap().to_string();
    std::fs::write(split.join("val.txt"), format!("{first}\n")).unwrap();
    let pre2 = pre.join("two").display().to_string();
    run_ok(&common(&[
        "--split_dir",
        &split.display().to_string(),
        "--split_name",
        "val",
        "--seed",
        "5",
        "--save_overlays",
        "0",
        "--enable_cudnn_tuning",
        "--skip_inference",
        "--preprocessed_dir",
        &pre2,
    ]));
    let cfg = json(&Path::new(&pre2).join("inference_config.json"));
    assert_eq!(cfg["options"]["save_overlays"], false);
    assert_eq!(cfg["options"]["shuffle_seed"], 5);
    assert_eq!(cfg["options"]["split_name"], "val");
    let meta2 = json(&Path::new(&pre2).join("metadata.json"));
    assert_eq!(meta2["shuffle_seed"], 5);
    assert_eq!(meta2["video_order"], serde_json::json!([first]));

    // 3: phase B alone from that setup.
    run_ok(&common(&[
        "--split_dir",
        &split.display().to_string(),
        "--skip_setup",
        "--preprocessed_dir",
        &pre2,
    ]));
    let (_, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert!(rows.iter().any(|r| r[col("input_frame_stride")] == "1"));

    // An integer boolean that is neither 0 nor 1 is a usage error (exit 2).
    let o = cmd(&common(&["--test_mode", "--save_overlays", "2"]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
