//! `vosbench plot` on a small benchmark CSV written here: the per-model summary (the bench
//! table's own numbers), skipped rows, the SVGs.

use vosbench::bench::results::{write_rows, Row, RowStatus};
use vosbench::cli::plot::{
    means_csv, memory_svg, nice_ticks, read_summary, run, scatter_svg, summary_of, Args,
};

/// One row: `frames` tracked at `latency_ms` each; memory as (GPU alloc, GPU reserved, RSS,
/// system) MiB.
#[allow(clippy::too_many_arguments)]
fn row(
    video: &str,
    model: &str,
    frames: usize,
    latency_ms: Option<f64>,
    fps_steady: Option<f64>,
    jandf: Option<f64>,
    mem: [Option<f64>; 4],
    status: RowStatus,
) -> Row {
    Row {
        video: video.into(),
        object: "001".into(),
        model: model.into(),
        frames,
        latency_ms,
        fps: latency_ms.map(|l| 1000.0 / l),
        fps_steady,
        JandF: jandf,
        gpu_peak_alloc_MiB: mem[0],
        gpu_peak_reserved_MiB: mem[1],
        cpu_peak_rss_MiB: mem[2],
        system_peak_MiB: mem[3],
        status,
        ..Row::default()
    }
}

fn rows() -> Vec<Row> {
    let none = [None; 4];
    vec![
        // 10 frames at 20 FPS and 30 frames at 40 FPS: 40 frames in 1.25 s = 32 FPS (the plain
        // mean of the rows' FPS, 30, would weigh the short clip like the long one).
        row(
            "v1",
            "sam2.1_tiny",
            10,
            Some(50.0),
            Some(22.0),
            Some(0.70),
            [Some(400.0), Some(500.0), Some(900.0), Some(3000.0)],
            RowStatus::Ok,
        ),
        row(
            "v2",
            "sam2.1_tiny",
            30,
            Some(25.0),
            Some(34.0),
            Some(0.80),
            [Some(600.0), Some(700.0), Some(1100.0), Some(3200.0)],
            RowStatus::Ok,
        ),
        row(
            "v1",
            "edgetam",
            10,
            Some(20.0),
            None,
            Some(0.60),
            [Some(200.0), Some(300.0), Some(800.0), Some(2800.0)],
            RowStatus::Ok,
        ),
        row(
            "v2",
            "edgetam",
            10,
            None,
            None,
            None,
            none,
            RowStatus::BudgetExceeded,
        ),
        row(
            "v3",
            "edgetam",
            30,
            Some(10.0),
            Some(80.0),
            Some(0.64),
            [None, Some(320.0), Some(820.0), Some(2900.0)],
            RowStatus::Ok,
        ),
        row(
            "v1",
            "sam2.1_large",
            10,
            None,
            None,
            None,
            none,
            RowStatus::Error,
        ),
    ]
}

fn approx(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn means_skip_failed_rows_and_empty_values() {
    let s = summary_of(&rows());
    assert_eq!(s.rows, 6);
    assert_eq!(s.skipped_total(), 2);
    assert_eq!(s.rows_budget_exceeded, 1);
    assert_eq!(s.rows_error, 1);
    // The table's order (by name); the large model has no ok row at all.
    let names: Vec<&str> = s.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(names, ["edgetam", "sam2.1_tiny"]);
    let tiny = &s.models[1];
    assert_eq!(tiny.rows_ok, 2);
    approx(tiny.fps, 32.0);
    approx(tiny.fps_steady_mean, 28.0);
    approx(tiny.JandF_mean, 0.75);
    approx(tiny.gpu_peak_alloc_MiB_max, 600.0);
    approx(tiny.system_peak_MiB_max, 3200.0);
    let et = &s.models[0];
    assert_eq!(et.rows_ok, 2);
    approx(et.fps, 80.0);
    approx(et.fps_steady_mean, 80.0); // one value: the empty cell is not a zero
    approx(et.JandF_mean, 0.62);
    approx(et.gpu_peak_alloc_MiB_max, 200.0);
    approx(et.gpu_peak_reserved_MiB_max, 320.0);
}

#[test]
fn svgs_hold_one_mark_per_model_and_series() {
    let s = summary_of(&rows());
    let sc = scatter_svg(&s).unwrap();
    assert!(sc.starts_with("<svg") && sc.trim_end().ends_with("</svg>"));
    assert_eq!(sc.matches(r#"class="fps""#).count(), 2);
    assert_eq!(sc.matches(r#"class="fps_steady""#).count(), 2);
    assert!(sc.contains("sam2.1_tiny: J&amp;F 0.75, 32.00 FPS"));
    assert!(sc.contains("edgetam: J&amp;F 0.62, 80.00 FPS"));
    let mem = memory_svg(&s).unwrap();
    for class in [
        "gpu_peak_alloc_MiB",
        "gpu_peak_reserved_MiB",
        "cpu_peak_rss_MiB",
        "system_peak_MiB",
    ] {
        assert_eq!(
            mem.matches(&format!(r#"class="{class}""#)).count(),
            2,
            "{class}"
        );
    }
    assert!(mem.contains("edgetam: GPU peak reserved 320.0 MiB"));
    // Bars are drawn to scale: edgetam's system peak (2900 MiB) against tiny's (3200 MiB).
    let heights: Vec<f64> = mem
        .lines()
        .filter(|l| l.contains(r#"class="system_peak_MiB""#))
        .map(|l| {
            let h = l.split("height=\"").nth(1).unwrap();
            h[..h.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    assert!(
        (heights[0] / heights[1] - 2900.0 / 3200.0).abs() < 1e-3,
        "{heights:?}"
    );
}

#[test]
fn run_writes_the_files_and_rejects_a_csv_without_ok_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("vosbench_summary.csv");
    write_rows(&csv, &rows()).unwrap();
    let out = dir.path().join("plots");
    run(Args {
        csv: csv.clone(),
        out: Some(out.clone()),
    })
    .unwrap();
    for f in ["fps_vs_jandf.svg", "memory.svg", "plot_means.csv"] {
        assert!(out.join(f).is_file(), "{f} not written");
    }
    let means = std::fs::read_to_string(out.join("plot_means.csv")).unwrap();
    assert!(
        means.contains("edgetam,2,80.0000,80.0000,0.6200,200.0000,320.0000,820.0000,2900.0000"),
        "{means}"
    );
    let back = read_summary(&csv).unwrap();
    assert_eq!(back.models.len(), 2);

    let failed: Vec<Row> = rows()
        .into_iter()
        .filter(|r| r.status != RowStatus::Ok)
        .collect();
    let bad = dir.path().join("bad.csv");
    write_rows(&bad, &failed).unwrap();
    let e = run(Args {
        csv: bad.clone(),
        out: Some(out.clone()),
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    // Not a benchmark CSV of this version: refused, not guessed at.
    std::fs::write(&bad, "model,fps,JandF,status\nx,1,2,ok\n").unwrap();
    let other = read_summary(&bad).unwrap_err();
    assert_eq!(other.exit_code(), 2);
    assert!(other.to_string().contains("other columns"), "{other}");
    let missing = dir.path().join("missing.csv");
    assert_eq!(
        run(Args {
            csv: missing,
            out: None
        })
        .unwrap_err()
        .exit_code(),
        2
    );
}

#[test]
fn ticks_cover_the_range_with_round_steps() {
    let (lo, hi, t) = nice_ticks(0.0, 3100.0, 6);
    assert_eq!(lo, 0.0);
    assert!(hi >= 3100.0);
    // 3100 / 6 = 517 per tick rounds up to a step of 1000.
    assert_eq!(t, vec![0.0, 1000.0, 2000.0, 3000.0, 4000.0]);
    let (lo, hi, t) = nice_ticks(62.0, 75.0, 6);
    assert!(lo <= 62.0 && hi >= 75.0 && t.len() >= 3);
    let (lo, hi, _) = nice_ticks(5.0, 5.0, 6);
    assert!(lo < 5.0 && hi > 5.0);
}

#[test]
fn means_csv_quotes_odd_model_names() {
    let odd = "sam, \"big\"";
    let s = summary_of(&[row(
        "v1",
        odd,
        10,
        Some(100.0),
        None,
        Some(0.5),
        [None; 4],
        RowStatus::Ok,
    )]);
    assert_eq!(s.models[0].model, odd);
    let text = means_csv(&s);
    let mut back = csv::Reader::from_reader(text.as_bytes());
    let rec = back.records().next().unwrap().unwrap();
    assert_eq!(&rec[0], odd);
    assert_eq!(&rec[2], "10.0000");
}

/// `--out FILE.svg` / `FILE.png` draws the first figure into that file, also when the file
/// exists already (it was once taken for a folder to create: "File exists") and when its folder
/// does not exist yet.
#[test]
fn out_file_is_written_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("vosbench_summary.csv");
    write_rows(&csv, &rows()).unwrap();
    for name in ["fig.svg", "new/fig.png"] {
        let out = dir.path().join(name);
        for pass in 0..2 {
            run(Args {
                csv: csv.clone(),
                out: Some(out.clone()),
            })
            .unwrap_or_else(|e| panic!("{name}, run {pass}: {e}"));
            let bytes = std::fs::read(&out).unwrap();
            if name.ends_with(".svg") {
                assert!(String::from_utf8_lossy(&bytes).contains("<svg"), "{name}");
            } else {
                assert_eq!(&bytes[1..4], b"PNG", "{name}");
            }
        }
    }
}
