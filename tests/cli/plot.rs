//! `vosbench plot` on a small summary CSV written here: per-model means, skipped rows, the SVGs.

use vosbench::cli::plot::{
    memory_svg, nice_ticks, read_summary, read_summary_from, run, scatter_svg, Args,
};

const CSV: &str = "\
video,object,model,fps,fps_steady,JandF,gpu_peak_alloc_MiB,gpu_peak_reserved_MiB,cpu_peak_rss_MiB,system_peak_MiB,status
v1,1,sam2.1_tiny,20,22,70,400,500,900,3000,ok
v2,1,sam2.1_tiny,30,34,80,600,700,1100,3200,ok
v1,1,edgetam,50,,60,200,300,800,2800,ok
v2,1,edgetam,,,,,,,,oom
v3,1,edgetam,70,80,64,,320,820,2900,ok
v1,1,sam2.1_large,,,,,,,,error
";

fn approx(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn means_skip_failed_rows_and_empty_values() {
    let s = read_summary_from(CSV.as_bytes(), "test.csv").unwrap();
    assert_eq!(s.rows, 6);
    assert_eq!(s.skipped_total(), 2);
    assert_eq!(s.skipped.get("oom"), Some(&1));
    assert_eq!(s.skipped.get("error"), Some(&1));
    assert!(s.missing_columns.is_empty());
    // Order of first appearance; the large model has no ok row at all.
    let names: Vec<&str> = s.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(names, ["sam2.1_tiny", "edgetam"]);
    let tiny = &s.models[0];
    assert_eq!(tiny.rows, 2);
    approx(tiny.get("fps"), 25.0);
    approx(tiny.get("fps_steady"), 28.0);
    approx(tiny.get("JandF"), 75.0);
    approx(tiny.get("gpu_peak_alloc_MiB"), 500.0);
    approx(tiny.get("system_peak_MiB"), 3100.0);
    let et = &s.models[1];
    assert_eq!(et.rows, 2);
    approx(et.get("fps"), 60.0);
    approx(et.get("fps_steady"), 80.0); // one value
    approx(et.get("JandF"), 62.0);
    approx(et.get("gpu_peak_alloc_MiB"), 200.0); // the empty cell is not a zero
    approx(et.get("gpu_peak_reserved_MiB"), 310.0);
}

#[test]
fn svgs_hold_one_mark_per_model_and_series() {
    let s = read_summary_from(CSV.as_bytes(), "test.csv").unwrap();
    let sc = scatter_svg(&s).unwrap();
    assert!(sc.starts_with("<svg") && sc.trim_end().ends_with("</svg>"));
    assert_eq!(sc.matches(r#"class="fps""#).count(), 2);
    assert_eq!(sc.matches(r#"class="fps_steady""#).count(), 2);
    assert!(sc.contains("sam2.1_tiny: J&amp;F 75.00, 25.00 FPS"));
    assert!(sc.contains("edgetam: J&amp;F 62.00, 60.00 FPS"));
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
    assert!(mem.contains("edgetam: GPU peak reserved 310.0 MiB"));
    // Bars are drawn to scale: the tallest bar (3100 MiB) is taller than 3000 * h/3100 of another.
    let heights: Vec<f64> = mem
        .lines()
        .filter(|l| l.contains(r#"class="system_peak_MiB""#))
        .map(|l| {
            let h = l.split("height=\"").nth(1).unwrap();
            h[..h.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    assert!(
        (heights[0] / heights[1] - 3100.0 / 2850.0).abs() < 1e-3,
        "{heights:?}"
    );
}

#[test]
fn run_writes_the_files_and_rejects_a_csv_without_ok_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("vosbench_summary.csv");
    std::fs::write(&csv, CSV).unwrap();
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
        means.contains("edgetam,2,60.0000,80.0000,62.0000,200.0000,310.0000,810.0000,2850.0000")
    );
    let back = read_summary(&csv).unwrap();
    assert_eq!(back.models.len(), 2);

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "model,fps,JandF,status\nx,1,2,oom\n").unwrap();
    let e = run(Args {
        csv: bad,
        out: Some(out.clone()),
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let no_model = read_summary_from("fps,JandF\n1,2\n".as_bytes(), "m.csv").unwrap_err();
    assert!(no_model.to_string().contains("model"));
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
    let s = read_summary_from(
        "model,fps,JandF,status\n\"sam, \"\"big\"\"\",10,50,ok\n".as_bytes(),
        "q.csv",
    )
    .unwrap();
    assert_eq!(s.models[0].model, "sam, \"big\"");
    let text = vosbench::cli::plot::means_csv(&s);
    let back = read_summary_from(text.as_bytes(), "back.csv").unwrap();
    assert_eq!(back.models[0].model, "sam, \"big\"");
    assert_eq!(back.models[0].get("fps"), Some(10.0));
    assert!(!back.has_status);
}
