//! Regression tests of the benchmark's reliability defects (issue 18): where results go, exit
//! codes, setups that fail without breaking the previous one, checks before anything is written,
//! split problems, and the small input mistakes. Each drives the real binary on the tiny demo
//! split of `bench_demo`.

use super::bench_demo::{base_args, cmd, json, read_csv, run_ok, COLUMNS};
use std::path::Path;

fn with(mut a: Vec<String>, extra: &[&str]) -> Vec<String> {
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Set `flag`'s value in an argument list (the flag must be there).
fn set(mut a: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let i = a.iter().position(|s| s == flag).expect(flag);
    a[i + 1] = value.to_string();
    a
}

fn run(args: &[String]) -> (Option<i32>, String) {
    let o = cmd(args).output().expect("start vosbench");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn col(name: &str) -> usize {
    COLUMNS.split(',').position(|c| c == name).unwrap()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// `--skip-setup` with another run's preprocessed dir writes its results to the `--out-dir` it
/// was given, not to the out-dir recorded by that setup.
#[test]
fn skip_setup_writes_to_the_given_out_dir() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good");
    run_ok(&with(base_args(&good), &["--skip-inference"]));
    let run_b = d.path().join("runB");
    let a = with(
        set(base_args(&good), "--out-dir", &p(&run_b)),
        &[
            "--skip-setup",
            "--preprocessed-dir",
            &p(&good.join("preprocessed")),
        ],
    );
    run_ok(&a);
    let (_, rows) = read_csv(&run_b.join("vosbench_summary.csv"));
    assert!(!rows.is_empty());
    assert!(run_b.join("summary.json").is_file());
    assert!(
        !good.join("vosbench_summary.csv").exists() && !good.join("summary.json").exists(),
        "nothing written to the out-dir the setup recorded"
    );
    let _ = json(&run_b.join("summary.json"));
}

/// Rows that end in `error` fail the run: exit code 1, a one-line error counting them, and the
/// final table's `err` column and first error. Here every frame cache is truncated after setup,
/// so every row fails; both with phase B alone and with one process per model.
#[test]
fn failed_rows_exit_1_with_counts_and_first_error() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    // Not --quiet: phase B takes it from the setup's options, and the table is what is checked.
    let mut base = base_args(&out);
    base.retain(|s| s != "--quiet");
    run_ok(&with(base.clone(), &["--skip-inference"]));
    let frames = out.join("preprocessed").join("frames");
    for e in std::fs::read_dir(&frames).unwrap() {
        let f = e.unwrap().path();
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    }
    let loud = with(base.clone(), &["--skip-setup"]);
    for extra in [&[][..], &["--isolate-models"][..]] {
        let (code, err) = run(&with(loud.clone(), extra));
        assert_eq!(code, Some(1), "{extra:?}: {err}");
        let last = err.trim().lines().last().unwrap();
        assert!(
            last.starts_with("error: 4 of 4 rows ended in error (first: ")
                && last.contains("truncated"),
            "{extra:?}: {err}"
        );
        assert!(
            !err.contains("exit code"),
            "the launcher adds no second line: {err}"
        );
        let header = err.lines().find(|l| l.starts_with("model ")).unwrap();
        assert!(header.contains(" err "), "{err}");
        assert!(err.contains("2 error rows, first: "), "{err}");
        let (_, rows) = read_csv(&out.join("vosbench_summary.csv"));
        assert!(rows.iter().all(|r| r[col("status")] == "error"));
    }
}

/// A synthetic split outside any out-dir (so a test can check that nothing was created there).
fn split(dir: &Path) -> String {
    vosbench::data::synth::write_split(
        dir,
        &vosbench::data::synth::SynthOptions {
            videos: 2,
            frames: 8,
            width: 160,
            height: 120,
            seed: 0,
            objects: 2,
        },
    )
    .unwrap();
    p(dir)
}

/// `base_args` on `split_dir` instead of `--demo`.
fn split_args(split_dir: &str, out: &Path) -> Vec<String> {
    let mut a = base_args(out);
    a.retain(|s| s != "--demo");
    with(a, &["--split-dir", split_dir])
}

/// A setup that fails (here: no weights for the variant at another image size) leaves the
/// previous setup's metadata.json and inference_config.json as they were, so phase B still runs
/// on them; caches of several sides coexist and a later setup lists them all.
#[test]
fn a_failed_setup_keeps_the_previous_one() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let s = split(&d.path().join("split"));
    let args = with(split_args(&s, &out), &["--skip-inference"]);
    run_ok(&args);
    let pre = out.join("preprocessed");
    let files = ["metadata.json", "inference_config.json"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(pre.join(f)).unwrap())
        .collect();
    let mut no_weights = set(args.clone(), "--imgsz", "128");
    no_weights.retain(|a| a != "--random-weights");
    let no_weights = with(
        no_weights,
        &["--weights-dir", &p(&d.path().join("no_weights"))],
    );
    let (code, err) = run(&no_weights);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no weights for edgetam_test"), "{err}");
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(pre.join(f)).unwrap(), b, "{f} unchanged");
    }
    let frames: Vec<String> = std::fs::read_dir(pre.join("frames"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(frames.iter().all(|f| f.ends_with(".vfc")), "{frames:?}");
    assert!(
        frames.iter().any(|f| f.ends_with(".s128.vfc")),
        "{frames:?}"
    );
    assert!(
        frames.iter().any(|f| f.ends_with(".s256.vfc")),
        "{frames:?}"
    );
    // Phase B on the kept setup: every row ok.
    let mut infer = split_args(&s, &out);
    infer.push("--skip-setup".into());
    run_ok(&infer);
    let (_, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r[col("status")] == "ok"), "{rows:?}");
    // A successful setup at 128 lists both sides' caches.
    run_ok(&set(args, "--imgsz", "128"));
    let meta = json(&pre.join("metadata.json"));
    let sides: Vec<u64> = meta["videos"][0]["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_u64().unwrap())
        .collect();
    assert_eq!(sides, [128, 256]);
}

/// Assert that `args` fails as bad input (exit 2, one line containing `want`) and that it
/// created none of `untouched`.
fn refused(args: &[String], want: &str, untouched: &[&Path]) {
    let (code, err) = run(args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(want), "want '{want}': {err}");
    for u in untouched {
        assert!(!u.exists(), "{} was created: {err}", u.display());
    }
}

/// Image sizes are checked per variant before anything is written: EdgeTAM's perceiver needs the
/// side/16 memory grid to split into its windows (16x16 for EdgeTAM, 4x4 for the test variant).
#[test]
fn image_size_is_checked_per_variant_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    refused(
        &set(base_args(&out), "--imgsz", "224"),
        "needs a side that is a multiple of 64",
        &[&out],
    );
    for side in ["128", "288"] {
        refused(
            &set(
                set(base_args(&out), "--models", "edgetam_points"),
                "--imgsz",
                side,
            ),
            "edgetam needs a side that is a multiple of 256",
            &[&out],
        );
    }
}

/// A `--split-name` whose list does not exist is an error, not every video of the split.
#[test]
fn unknown_split_name_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let s = split(&d.path().join("split"));
    refused(
        &with(split_args(&s, &out), &["--split-name", "synht"]),
        "synht.txt not found",
        &[&out],
    );
    run_ok(&with(
        split_args(&s, &out),
        &["--split-name", "synth", "--skip-inference"],
    ));
}

/// Checks that need no model come before anything is written: a foreign CSV in the out-dir, an
/// out-dir that cannot be created, a strict run on a split with problems, bad demo flags. The
/// preprocessed dir (and the demo split) are not created.
#[test]
fn input_checks_come_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let s = split(&d.path().join("split"));
    let pre = d.path().join("pre");
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let csv = out.join("vosbench_summary.csv");
    std::fs::write(
        &csv, "a,b
1,2
",
    )
    .unwrap();
    let args = with(split_args(&s, &out), &["--preprocessed-dir", &p(&pre)]);
    refused(&args, "other columns", &[&pre]);
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "a,b
1,2
"
    );
    refused(
        &with(base_args(&out), &["--preprocessed-dir", &p(&pre)]),
        "other columns",
        &[&pre, &out.join("demo_split")],
    );
    let file = d.path().join("a_file");
    std::fs::write(&file, "").unwrap();
    refused(
        &set(args.clone(), "--out-dir", &p(&file.join("out"))),
        "is not a folder",
        &[&pre],
    );
    let fresh = d.path().join("fresh");
    for (flag, value, want) in [
        ("--demo-frames", "0", "at least 3 frames"),
        ("--demo-videos", "0", "--demo-videos 0"),
        ("--demo-size", "10x10", "at least 16x16"),
        ("--demo-size", "big", "expected WxH"),
    ] {
        refused(&set(base_args(&fresh), flag, value), want, &[&fresh]);
    }
    // A broken first annotation: with --strict an error, without it a problem line.
    let ann = Path::new(&s).join("Annotations_6fps/synth_000/000/00000.png");
    std::fs::write(&ann, b"not a png").unwrap();
    let strict = with(
        split_args(&s, &fresh),
        &["--strict", "--preprocessed-dir", &p(&pre)],
    );
    refused(&strict, "--strict: 1 split problem in ", &[&pre, &fresh]);
    let mut loud = with(split_args(&s, &fresh), &["--skip-inference"]);
    loud.retain(|a| a != "--quiet");
    let (code, err) = run(&loud);
    assert_eq!(code, Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("split problem: "))
        .unwrap_or_else(|| panic!("no problem line: {err}"));
    assert!(
        line.contains("00000.png: video synth_000 object 000: first annotation unusable")
            && line.contains("the prompt moves to a later annotation"),
        "{line}"
    );
    assert!(err.contains("(1 problem left out)"), "{err}");
}

/// Small things: a negative number reaches the flag's own parser; a resumed run says how many
/// rows it kept and summary.json lists the earlier inference processes; an offline fetch
/// leaves no empty weights folder.
#[test]
fn small_input_mistakes_and_resume_reports() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let (code, err) = run(&with(base_args(&out), &["--workspace-mb", "-5"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid value '-5' for '--workspace-mb"),
        "{err}"
    );
    assert!(!out.exists());

    let args = with(base_args(&out), &["--limit-videos", "1"]);
    run_ok(&args);
    let first = json(&out.join("summary.json"));
    let p1 = first["inference_pids"].clone();
    assert_eq!(p1.as_array().unwrap().len(), 1);
    let mut loud = args.clone();
    loud.retain(|a| a != "--quiet");
    let (code, err) = run(&loud);
    assert_eq!(code, Some(0), "{err}");
    let (_, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert!(
        err.contains(&format!("{} rows already finished, kept", rows.len())),
        "{err}"
    );
    let again = json(&out.join("summary.json"));
    assert_eq!(again["earlier_inference_pids"], p1);
    assert_ne!(again["inference_pids"], p1);

    let w = d.path().join("weights");
    let o = cmd(&[
        "fetch".to_string(),
        "edgetam".to_string(),
        "--weights-dir".to_string(),
        p(&w),
    ])
    .env("HF_ENDPOINT", "http://127.0.0.1:9")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!w.exists(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A split of a long video (`synth_000`, `long` frames) then a short one (`synth_001`, 8
/// frames), both 160x120 with one object.
fn long_then_short(dir: &Path, long: usize) -> String {
    let write = |d: &Path, frames, seed| {
        vosbench::data::synth::write_split(
            d,
            &vosbench::data::synth::SynthOptions {
                videos: 1,
                frames,
                width: 160,
                height: 120,
                seed,
                objects: 1,
            },
        )
        .unwrap();
    };
    write(dir, long, 0);
    let short = dir.with_extension("short");
    write(&short, 8, 1);
    for sub in ["JPEGImages_24fps", "Annotations_6fps"] {
        std::fs::rename(
            short.join(sub).join("synth_000"),
            dir.join(sub).join("synth_001"),
        )
        .unwrap();
    }
    std::fs::write(dir.join("synth.txt"), "synth_000\nsynth_001\n").unwrap();
    p(dir)
}

fn num(row: &[String], name: &str) -> f64 {
    row[col(name)]
        .parse()
        .unwrap_or_else(|_| panic!("{name}: '{}'", row[col(name)]))
}

/// A budget crossed in the middle of the first video only: that row ends `budget_exceeded` on a
/// frame past its prompt, the session is freed, and the next video runs (`ok`, exit 0) from the
/// baseline memory the first one started from. On the CPU the budget is held against the process
/// RSS, which grows along a video as its frame cache is paged in (one 256x256 RGB frame, 192 KiB,
/// per frame); a session that were not freed would keep those pages, and the next video's
/// baseline would be up by them. The budget is set between the short video's and the long
/// video's peaks of a run without one.
#[test]
fn budget_crossed_mid_video_frees_the_session_for_the_next_video() {
    let d = tempfile::tempdir().unwrap();
    let s = long_then_short(&d.path().join("split"), 64);
    let v = super::bench_demo::variant();
    let args = |out: &Path| {
        let mut a = set(split_args(&s, out), "--models", &format!("{v}_points"));
        a = set(a, "--max-clip-frames", "0");
        a
    };
    let clean = d.path().join("clean");
    run_ok(&args(&clean));
    let (_, rows) = read_csv(&clean.join("vosbench_summary.csv"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r[col("status")] == "ok"), "{rows:?}");
    assert_eq!(
        (&*rows[0][col("video")], &*rows[1][col("video")]),
        ("synth_000", "synth_001")
    );
    let (long_peak, short_peak) = (
        num(&rows[0], "cpu_peak_rss_MiB"),
        num(&rows[1], "cpu_peak_rss_MiB"),
    );
    let clean_step = num(&rows[1], "baseline_rss_MiB") - num(&rows[0], "baseline_rss_MiB");
    // The long video pages in 56 more frames (10.5 MiB) than the short one.
    assert!(
        long_peak > short_peak + 6.0,
        "peaks: long {long_peak}, short {short_peak}"
    );
    let budget_mib = (long_peak + short_peak) / 2.0;

    // Phase B again, into another out-dir, with that budget in the setup's config.
    let pre = clean.join("preprocessed");
    let cfg_path = pre.join("inference_config.json");
    let mut cfg = json(&cfg_path);
    cfg["options"]["mem_budget_bytes"] = serde_json::Value::from((budget_mib * 1048576.0) as u64);
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let out = d.path().join("budget");
    let (code, err) = run(&with(
        args(&out),
        &["--skip-setup", "--preprocessed-dir", &p(&pre)],
    ));
    assert_eq!(code, Some(0), "budget_exceeded is not a failure: {err}");
    let (_, rows) = read_csv(&out.join("vosbench_summary.csv"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (long, short) = (&rows[0], &rows[1]);
    assert_eq!(long[col("status")], "budget_exceeded", "{long:?}");
    assert_eq!(short[col("status")], "ok", "{short:?}");
    // "process_rss used X MiB on frame F, over the B MiB budget"
    let e = &long[col("error")];
    let used: f64 = e
        .split("used ")
        .nth(1)
        .and_then(|t| t.split(" MiB").next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{e}"));
    let frame: usize = e
        .split("on frame ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{e}"));
    let prompt: usize = long[col("prompt_frame")].parse().unwrap();
    assert!(
        frame > prompt + 1 && frame < 63,
        "mid-video: frame {frame} ({e})"
    );
    let base_long = num(long, "baseline_rss_MiB");
    let grown = used - base_long;
    let step = num(short, "baseline_rss_MiB") - base_long;
    eprintln!(
        "budget {budget_mib:.1} MiB; long video from {base_long:.1} MiB crossed it on frame \
         {frame} at {used:.1} (+{grown:.1}); next video's baseline {step:+.1} MiB (clean run \
         {clean_step:+.1})"
    );
    assert!(grown > 3.0, "{e}");
    assert!(
        step <= clean_step.max(0.0) + grown / 4.0,
        "the next video starts {step:.1} MiB above the one that crossed the budget (a clean run: \
         {clean_step:+.1}); the crossing video grew {grown:.1} MiB before it stopped"
    );
}
