//! `vosbench bench --objects-sweep 1,2` on the CPU with the small EdgeTAM test variant and random
//! weights: one row per (objects, batching) with its timing and memory filled, the synthetic
//! videos and prompt masks left for another engine, `vosbench plot` drawing both sweep figures
//! (SVG with tagged marks, PNG), and bad sweep options refused with exit code 2.

use crate::common::{assert_bad_input, vosbench};
use std::path::PathBuf;
use vosbench::bench::sweep::{
    frame0_masks, frame_stats, read_sweep_rows, write_sweep, ObjectCounts, SweepPrompt, SweepRow,
    SweepSpec, SWEEP_CSV, SWEEP_JSON,
};

fn variant() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models/edgetam_test.json")
        .display()
        .to_string()
}

#[test]
fn sweep_writes_rows_and_plot_draws_them() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("sweep");
    let models = format!("{}_points", variant());
    let o = vosbench(&[
        "bench",
        "--objects-sweep",
        "2,1",
        "--sweep-frames",
        "6",
        "--warmup-frames",
        "1",
        "--models",
        &models,
        "--random-weights",
        "--device",
        "cpu",
        "--quiet",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = read_sweep_rows(&out.join(SWEEP_CSV)).unwrap();
    let keys: Vec<(usize, &str)> = rows
        .iter()
        .map(|r| (r.objects, r.batching.as_str()))
        .collect();
    assert_eq!(
        keys,
        [(1, "batched"), (1, "looped"), (2, "batched"), (2, "looped")]
    );
    for r in &rows {
        assert_eq!(r.status, "ok", "{r:?}");
        assert_eq!(r.model, "edgetam_test");
        assert_eq!(r.image_size, 256);
        assert!(r.weights.starts_with("random"), "{}", r.weights);
        // 6 frames: the prompt frame has no time, 1 warm-up frame left out
        assert_eq!((r.frames, r.timed_frames), (6, 4));
        let (mean, p50, fps) = (
            r.frame_ms_mean.unwrap(),
            r.frame_ms_p50.unwrap(),
            r.fps.unwrap(),
        );
        assert!(mean > 0.0 && p50 > 0.0);
        assert!((fps - 1000.0 / mean).abs() < 1e-9);
        assert!((r.object_fps.unwrap() - fps * r.objects as f64).abs() < 1e-9);
        assert!(r.cpu_peak_rss_MiB.unwrap() > 0.0);
        assert_eq!(r.gpu_peak_alloc_MiB, None);
        // the objects share the image encoder: one pass per frame
        assert_eq!(r.image_encoder_passes, 6);
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(SWEEP_JSON)).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 4);
    assert_eq!(json["spec"]["counts"], serde_json::json!([1, 2]));
    // the video and the masks prompted with, for the PyTorch side
    let v2 = out.join("sweep_videos/s256_n2_f6");
    assert_eq!(
        std::fs::read_dir(v2.join("JPEGImages_24fps/synth_000"))
            .unwrap()
            .count(),
        6
    );
    for k in ["001.png", "002.png"] {
        assert!(v2.join("prompts").join(k).is_file(), "{k}");
    }

    // the figures
    let figs = d.path().join("figs");
    let o = vosbench(&[
        "plot",
        out.join(SWEEP_CSV).to_str().unwrap(),
        "--out",
        figs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "objects_fps.svg",
        "objects_fps.png",
        "objects_memory.svg",
        "objects_memory.png",
    ] {
        assert!(figs.join(f).is_file(), "{f} not written");
    }
    let svg = std::fs::read_to_string(figs.join("objects_fps.svg")).unwrap();
    // one mark per row, each with its value
    assert_eq!(svg.matches(r#"class="fps""#).count(), 4);
    let r = &rows[2];
    assert!(svg.contains(&format!(
        "edgetam_test batched, 2 objects: {:.2} FPS",
        r.fps.unwrap()
    )));
    assert!(
        svg.contains("Random weights (edgetam_test)"),
        "no random-weights note"
    );
    let png = image::open(figs.join("objects_memory.png")).unwrap();
    assert_eq!((png.width(), png.height()), (800, 500));
    // one file named by --out, replaced when it exists
    let one = d.path().join("one.png");
    std::fs::write(&one, b"old").unwrap();
    let o = vosbench(&[
        "plot",
        out.join(SWEEP_CSV).to_str().unwrap(),
        "--out",
        one.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::open(&one).unwrap().width(), 800);
}

#[test]
fn bad_sweep_options_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let models = format!("{}_points", variant());
    let base = |list: &str, frames: &str| -> Vec<String> {
        [
            "bench",
            "--objects-sweep",
            list,
            "--sweep-frames",
            frames,
            "--models",
            &models,
            "--random-weights",
            "--device",
            "cpu",
            "--out-dir",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>, needle: &str| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_bad_input(&refs, needle);
    };
    run(base("1,0", "20"), "outside 1..=200");
    run(base("two", "20"), "not a number of objects");
    run(base("1,2", "4"), "--sweep-frames 4");
    assert!(!out.exists(), "a refused sweep wrote {}", out.display());
}

#[test]
fn counts_parse_sorted_unique_and_bounded() {
    let c: ObjectCounts = "8, 1,2,4,2".parse().unwrap();
    assert_eq!(c.counts(), &[1, 2, 4, 8]);
    for bad in ["", "0", "1,x", "201", ",,"] {
        let e = bad.parse::<ObjectCounts>().unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad}");
    }
}

#[test]
fn stats_are_mean_and_median() {
    assert_eq!(frame_stats(&[]), (None, None));
    assert_eq!(frame_stats(&[3.0, 1.0, 2.0]), (Some(2.0), Some(2.0)));
    assert_eq!(frame_stats(&[4.0, 1.0, 2.0, 9.0]), (Some(4.0), Some(3.0)));
}

#[test]
fn frame0_masks_fill_up_with_distinct_disks() {
    let d = tempfile::tempdir().unwrap();
    let masks = frame0_masks(&d.path().join("none"), 64, 5).unwrap();
    assert_eq!(masks.len(), 5);
    for (i, a) in masks.iter().enumerate() {
        assert!(a.area() > 0);
        for b in &masks[i + 1..] {
            let overlap = a
                .data
                .iter()
                .zip(&b.data)
                .filter(|(x, y)| **x && **y)
                .count();
            assert_eq!(overlap, 0);
        }
    }
}

#[test]
fn rows_round_trip_through_the_csv() {
    let d = tempfile::tempdir().unwrap();
    let spec = SweepSpec {
        counts: "1,2".parse().unwrap(),
        frames: 10,
        prompt: SweepPrompt::Mask,
        videos_dir: d.path().join("v"),
    };
    let rows = vec![SweepRow {
        model: "m".into(),
        objects: 2,
        batching: "looped".into(),
        fps: Some(3.5),
        cpu_peak_rss_MiB: Some(100.0),
        status: "ok".into(),
        ..Default::default()
    }];
    write_sweep(d.path(), &spec, &rows).unwrap();
    assert_eq!(read_sweep_rows(&d.path().join(SWEEP_CSV)).unwrap(), rows);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join(SWEEP_JSON)).unwrap()).unwrap();
    assert_eq!(json["rows"][0]["objects"], 2);
    assert!(spec.check(7).is_ok() && spec.check(8).is_err());
}
