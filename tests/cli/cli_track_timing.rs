//! `vosbench track --timing`: the timing JSON behind tests/gpu/speed_vs_torch.sh, on CPU with the
//! committed test variant (fields present and sane, one latency per tracked frame after the
//! prompt frame, forward and backward), `--no-masks`, and the refusal of bf16 on CPU.

use crate::common::{
    assert_bad_input, click_arg, converted_sam2_test, fixture_dir, get, load_tensors, root,
    vosbench,
};
use std::path::Path;

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("timing JSON: '{key}' is not a number: {}", v[key]))
}

/// Run `track` with `extra` arguments and return the parsed timing JSON.
fn timed(tmp: &Path, weights: &str, extra: &[&str]) -> serde_json::Value {
    let frames = fixture_dir("video_test").join("frames");
    let cfg = root().join("tests/models/sam2.1_test.json");
    let json = tmp.join("timing.json");
    let mut args = vec![
        "track",
        "--model",
        cfg.to_str().unwrap(),
        "--frames",
        frames.to_str().unwrap(),
        "--weights",
        weights,
        "--timing",
        json.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = vosbench(&args);
    assert!(
        o.status.success(),
        "track failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("timing JSON written");
    serde_json::from_str(&text).expect("timing JSON parses")
}

fn check_common(t: &serde_json::Value, warmup: usize) {
    assert_eq!(t["engine"], "vosbench");
    assert_eq!(t["model"], "sam2.1_test");
    assert_eq!(t["device"], "cpu");
    assert_eq!(t["frames"], 24, "frames = video length");
    assert_eq!(
        (num(t, "video_width"), num(t, "video_height")),
        (144.0, 96.0)
    );
    let lat: Vec<f64> = t["latencies_ms"]
        .as_array()
        .expect("latencies_ms is a list")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(
        lat.len(),
        23,
        "one latency per tracked frame after the prompt frame"
    );
    assert!(lat.iter().all(|&l| l > 0.0 && l < 60_000.0), "{lat:?}");
    assert_eq!(num(t, "warmup_frames") as usize, warmup);
    let steady = &lat[warmup..];
    let fps = num(t, "fps_steady");
    let want = steady.len() as f64 * 1e3 / steady.iter().sum::<f64>();
    assert!(
        (fps - want).abs() <= 1e-3 * want,
        "fps_steady {fps}, want {want}"
    );
    let (p50, p90, p99) = (
        num(t, "latency_p50_ms"),
        num(t, "latency_p90_ms"),
        num(t, "latency_p99_ms"),
    );
    let max = steady.iter().cloned().fold(0.0, f64::max);
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max + 1e-3);
    // the first mask comes after the model load, within the process's lifetime
    let load = num(t, "model_load_ms");
    let first = num(t, "start_to_first_mask_ms");
    let start = num(t, "run_start_ms");
    assert!(load > 0.0 && num(t, "first_mask_ms") > 0.0 && num(t, "propagate_ms") > 0.0);
    assert!(
        start >= 0.0 && first >= start,
        "run start {start}, first mask {first}"
    );
    // procfs times have 10 ms resolution
    assert!(
        first + 20.0 >= start + load,
        "first {first} < start {start} + load {load}"
    );
    assert!(first < 600_000.0, "{first}");
    assert_eq!(num(t, "clock_ticks_per_second"), 100.0);
    // CPU: no device memory figures
    assert!(t["peak_device_alloc_bytes"].is_null());
    assert!(t["peak_device_reserved_bytes"].is_null());
    assert_eq!(t["device_pool_per_frame"], serde_json::json!([]));
    assert!(t.get("device_name").and_then(|v| v.as_str()).is_some());
    let frac: Vec<f64> = t["mask_fraction"]
        .as_array()
        .expect("mask_fraction is [min, mean, max]")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // the fixture's object covers a few percent to most of the frame, never nothing or all
    assert!(
        0.0 < frac[0] && frac[0] <= frac[1] && frac[1] <= frac[2] && frac[2] < 1.0,
        "{frac:?}"
    );
}

#[test]
fn timing_json_forward_from_a_click_without_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = converted_sam2_test(tmp.path());
    let t = load_tensors("video_test", "tracking.safetensors");
    let point = click_arg(&t);
    let t = timed(tmp.path(), &weights, &["--point", &point, "--no-masks"]);
    check_common(&t, 5);
    assert_eq!(t["precision"], "f32");
    assert_eq!(t["tf32"], false);
    // --memory-fence auto in f32: one fence after memory conditioning
    assert_eq!(t["memory_fences"], "memcond");
    // no CUDA graph on the CPU
    assert_eq!(t["cuda_graph"], "trunk off; step off");
    assert_eq!(t["masks_written"], false);
    // nothing but the JSON and the converted weights in the folder: no mask tree
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n == "frames"), "{names:?}");
}

#[test]
fn timing_json_backward_and_forward_from_a_box_in_f16_with_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = converted_sam2_test(tmp.path());
    let t = load_tensors("video_test", "tracking.safetensors");
    let b = get(&t, "box.prompt.box").to_vec1::<f32>().unwrap();
    let bbox = format!("{},{},{},{}", b[0], b[1], b[2], b[3]);
    let out = tmp.path().join("out");
    let t = timed(
        tmp.path(),
        &weights,
        &[
            "--box",
            &bbox,
            "--prompt-frame",
            "8",
            "--precision",
            "f16",
            "--warmup-frames",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--memory-fence",
            "heads, trunk",
        ],
    );
    check_common(&t, 3);
    assert_eq!(t["precision"], "f16");
    // given explicitly (auto would be none in half precision), listed in frame order
    assert_eq!(t["memory_fences"], "trunk,heads");
    assert_eq!(t["masks_written"], true);
    for i in 0..24 {
        assert!(
            out.join(format!("frames/001/{i:05}.png")).exists(),
            "mask {i}"
        );
    }
}

#[test]
fn bf16_on_cpu_and_bad_precision_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = converted_sam2_test(tmp.path());
    let frames = fixture_dir("video_test").join("frames");
    let cfg = root().join("tests/models/sam2.1_test.json");
    let base = [
        "track",
        "--model",
        cfg.to_str().unwrap(),
        "--frames",
        frames.to_str().unwrap(),
        "--point",
        "10,10",
        "--weights",
        &weights,
        "--no-masks",
        "--precision",
    ];
    let mut a = base.to_vec();
    a.push("bf16");
    assert_bad_input(&a, "bf16 needs a CUDA device");
    let mut a = base.to_vec();
    a.push("f8");
    assert_bad_input(&a, "bad --precision 'f8'");
    let mut a = base.to_vec();
    a.extend(["f32", "--memory-fence", "trunk,bogus"]);
    assert_bad_input(&a, "--memory-fence 'trunk,bogus': unknown point 'bogus'");
    let mut a = base.to_vec();
    a.extend(["f32", "--cuda-graph", "maybe"]);
    assert_bad_input(&a, "--cuda-graph 'maybe': expected auto, on or off");
}
