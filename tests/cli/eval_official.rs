//! Our evaluator against the official SA-V evaluator's own outputs on committed cases
//! (tests/reference/make_eval_fixtures.py ran the official code; see docs/eval.md): every
//! per-object and global number to 1e-9 and results.csv byte for byte.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use vosbench::data::masks::{read_mask_png, write_mask_png, Mask};
use vosbench::eval::{evaluate_dirs, EvalOptions, Report};

fn case_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name)
}

fn expected(name: &str) -> Value {
    let p = case_dir(name).join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn opts(skip: bool, strict: bool) -> EvalOptions {
    EvalOptions {
        skip_first_and_last: skip,
        strict,
        threads: 2,
    }
}

/// Compare a report with one mode ("skip" / "noskip") of a case's expected.json.
fn check(case: &str, mode: &str, report: &Report) {
    let want = &expected(case)[mode];
    let tol = 1e-9;
    let (gjf, gj, gf) = report.global().expect("global score");
    let g = &want["global"];
    for (name, got) in [("J&F", gjf), ("J", gj), ("F", gf)] {
        let w = g[name].as_f64().unwrap();
        assert!(
            (got - w).abs() <= tol,
            "{case}/{mode} global {name}: {got} vs official {w}"
        );
    }
    let objs = want["objects"].as_array().unwrap();
    assert_eq!(
        report.objects.len(),
        objs.len(),
        "{case}/{mode}: object count"
    );
    let mut worst = 0.0f64;
    for (o, w) in report.objects.iter().zip(objs) {
        assert_eq!(o.sequence, w["sequence"].as_str().unwrap(), "{case}/{mode}");
        assert_eq!(o.object.name(), w["obj"].as_str().unwrap(), "{case}/{mode}");
        for (name, got) in [("J", o.score.j), ("F", o.score.f)] {
            let wv = w[name].as_f64().unwrap();
            let d = (got - wv).abs();
            worst = worst.max(d);
            assert!(
                d <= tol,
                "{case}/{mode} {}/{} {name}: {got} vs official {wv}",
                o.sequence,
                o.object.name()
            );
        }
    }
    eprintln!(
        "{case}/{mode}: {} objects, worst |diff| {worst:.1e}",
        objs.len()
    );
    let csv = std::fs::read_to_string(case_dir(case).join(want["csv"].as_str().unwrap())).unwrap();
    assert_eq!(
        report.results_csv().unwrap(),
        csv,
        "{case}/{mode}: results.csv differs from the official file"
    );
}

fn run_case(case: &str) {
    let dir = case_dir(case);
    for (mode, skip) in [("skip", true), ("noskip", false)] {
        let report = evaluate_dirs(&dir.join("gt"), &dir.join("pred"), &opts(skip, true)).unwrap();
        assert!(
            report.missing_predictions.is_empty()
                && report.problems.is_empty()
                && report.unscored.is_empty()
        );
        check(case, mode, &report);
    }
}

#[test]
fn sav_layout_equals_official() {
    run_case("sav_mixed");
}

#[test]
fn davis_palette_layout_equals_official() {
    run_case("davis_multi");
}

#[test]
fn synthetic_shifted_equals_official() {
    run_case("synth_shift");
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

#[test]
fn missing_prediction_is_empty_by_default_and_an_error_with_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let pred = tmp.path().join("pred");
    let pred_empty = tmp.path().join("pred_empty");
    let src = case_dir("sav_mixed");
    copy_tree(&src.join("pred"), &pred);
    copy_tree(&src.join("pred"), &pred_empty);
    let victim = Path::new("vid_a/000/00016.png");
    std::fs::remove_file(pred.join(victim)).unwrap();
    let m = read_mask_png(&src.join("gt").join(victim)).unwrap();
    write_mask_png(&pred_empty.join(victim), &Mask::empty(m.width, m.height)).unwrap();

    let gt = src.join("gt");
    let lenient = evaluate_dirs(&gt, &pred, &opts(true, false)).unwrap();
    assert_eq!(lenient.missing_predictions, vec![pred.join(victim)]);
    let explicit = evaluate_dirs(&gt, &pred_empty, &opts(true, true)).unwrap();
    assert_eq!(
        lenient.results_csv().unwrap(),
        explicit.results_csv().unwrap()
    );
    assert_eq!(lenient.objects, explicit.objects);
    assert_ne!(
        lenient.global(),
        evaluate_dirs(&gt, &src.join("pred"), &opts(true, true))
            .unwrap()
            .global()
    );

    let err = evaluate_dirs(&gt, &pred, &opts(true, true)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("00016.png"), "{err}");
}

#[test]
fn missing_video_folder_follows_official_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let pred = tmp.path().join("pred");
    let src = case_dir("sav_mixed");
    copy_tree(&src.join("pred"), &pred);
    std::fs::remove_dir_all(pred.join("vid_c")).unwrap();
    let r = evaluate_dirs(&src.join("gt"), &pred, &opts(true, false)).unwrap();
    assert_eq!(r.videos_without_predictions, vec!["vid_c".to_string()]);
    assert!(r.objects.iter().all(|o| o.sequence != "vid_c"));
    let err = evaluate_dirs(&src.join("gt"), &pred, &opts(true, true)).unwrap_err();
    assert!(err.to_string().contains("vid_c"), "{err}");
}

#[test]
fn cli_writes_the_official_results_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = case_dir("sav_mixed");
    let out = Command::new(env!("CARGO_BIN_EXE_vosbench"))
        .args(["eval", "--strict", "--quiet", "--gt-root"])
        .arg(dir.join("gt"))
        .arg("--pred-root")
        .arg(dir.join("pred"))
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(tmp.path().join("results.csv")).unwrap();
    let want = std::fs::read_to_string(dir.join("official_results.csv")).unwrap();
    assert_eq!(got, want);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("results.json")).unwrap())
            .unwrap();
    let w = expected("sav_mixed")["skip"]["global"]["J&F"]
        .as_f64()
        .unwrap();
    assert!((json["global"]["J&F"].as_f64().unwrap() - w).abs() <= 1e-9);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Global score: J&F: 51.5"), "{stdout}");

    let bad = Command::new(env!("CARGO_BIN_EXE_vosbench"))
        .args(["eval", "--gt-root", "/nonexistent/gt", "--pred-root"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// The streaming scorer the benchmark uses gives the official numbers too.
#[test]
fn streaming_scorer_equals_official() {
    use vosbench::eval::ObjectScorer;
    let dir = case_dir("sav_mixed");
    for (mode, skip) in [("skip", true), ("noskip", false)] {
        let want = &expected("sav_mixed")[mode]["objects"];
        for w in want.as_array().unwrap() {
            let (seq, obj) = (w["sequence"].as_str().unwrap(), w["obj"].as_str().unwrap());
            let gt_dir = dir.join("gt").join(seq).join(obj);
            let mut frames: Vec<usize> = std::fs::read_dir(&gt_dir)
                .unwrap()
                .map(|e| {
                    e.unwrap()
                        .path()
                        .file_stem()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect();
            frames.sort();
            let mut scorer = ObjectScorer::new(&frames, skip);
            for &f in &frames {
                let name = format!("{f:05}.png");
                let gt = read_mask_png(&gt_dir.join(&name)).unwrap();
                let pred =
                    read_mask_png(&dir.join("pred").join(seq).join(obj).join(&name)).unwrap();
                scorer.feed(f, &pred, &gt).unwrap();
            }
            let s = scorer.finish().unwrap().unwrap();
            assert!(
                (s.j - w["J"].as_f64().unwrap()).abs() <= 1e-9,
                "{seq}/{obj} {mode} J"
            );
            assert!(
                (s.f - w["F"].as_f64().unwrap()).abs() <= 1e-9,
                "{seq}/{obj} {mode} F"
            );
        }
    }
}
