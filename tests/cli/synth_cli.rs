//! End to end through the built binary: `vosbench synth` is deterministic (and reproduces the
//! committed fixture byte for byte), `vosbench eval` of the split against itself gives J&F 100,
//! and against a shifted copy gives the number the official SA-V evaluator computed on the same
//! data (tests/fixtures/eval/synth_shift, made by tests/reference/make_eval_fixtures.py).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use vosbench::data::masks::{read_mask_png, write_mask_png};

const SYNTH_ARGS: [&str; 8] = [
    "--videos", "2", "--frames", "24", "--size", "320x240", "--seed", "7",
];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/synth_shift")
}

fn vosbench(args: &[&str], paths: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vosbench"));
    cmd.args(args);
    for (flag, p) in paths {
        cmd.arg(flag).arg(p);
    }
    let out = cmd.output().expect("run vosbench");
    assert!(
        out.status.success(),
        "vosbench {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn synth(out: &Path) -> f64 {
    let t = std::time::Instant::now();
    let mut args = vec!["synth"];
    args.extend(SYNTH_ARGS);
    vosbench(&args, &[("--out", out)]);
    t.elapsed().as_secs_f64()
}

/// Every file under `root`, relative path and bytes, sorted.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn synth_then_eval_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let secs = synth(&a);
    eprintln!("synth 2 videos x 24 frames 320x240: {secs:.2}s");
    synth(&b);
    let ta = tree(&a);
    assert_eq!(ta, tree(&b), "synth is not deterministic");
    assert_eq!(
        ta.iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "jpg"))
            .count(),
        48
    );
    assert_eq!(
        tree(&a.join("Annotations_6fps")),
        tree(&fixture().join("gt")),
        "synth output differs from the committed fixture made with the same options"
    );

    // Against itself: J&F 100.
    let self_out = tmp.path().join("self");
    vosbench(
        &["eval", "--strict", "--quiet"],
        &[
            ("--gt-root", &a),
            ("--pred-root", &a.join("Annotations_6fps")),
            ("--out", &self_out),
        ],
    );
    let r = json(&self_out.join("results.json"));
    assert_eq!(r["global"]["J&F"].as_f64(), Some(100.0), "{r}");
    assert_eq!(r["objects"].as_array().unwrap().len(), 8);

    // Against a shifted copy: the official evaluator's numbers.
    let want = json(&fixture().join("expected.json"));
    let shift: Vec<isize> = want["shift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as isize)
        .collect();
    let shifted = tmp.path().join("shifted");
    for (rel, _) in tree(&a.join("Annotations_6fps")) {
        let m = read_mask_png(&a.join("Annotations_6fps").join(&rel)).unwrap();
        write_mask_png(&shifted.join(&rel), &m.shifted(shift[0], shift[1])).unwrap();
    }
    let shift_out = tmp.path().join("shift_out");
    vosbench(
        &["eval", "--strict"],
        &[
            ("--gt-root", &a),
            ("--pred-root", &shifted),
            ("--out", &shift_out),
        ],
    );
    let got = json(&shift_out.join("results.json"));
    let w = &want["skip"];
    for k in ["J&F", "J", "F"] {
        let (g, o) = (
            got["global"][k].as_f64().unwrap(),
            w["global"][k].as_f64().unwrap(),
        );
        assert!((g - o).abs() <= 1e-9, "global {k}: {g} vs official {o}");
    }
    let (go, wo) = (
        got["objects"].as_array().unwrap(),
        w["objects"].as_array().unwrap(),
    );
    assert_eq!(go.len(), wo.len());
    for (g, o) in go.iter().zip(wo) {
        assert_eq!(g["sequence"], o["sequence"]);
        assert_eq!(g["obj"], o["obj"]);
        for k in ["J", "F"] {
            assert!(
                (g[k].as_f64().unwrap() - o[k].as_f64().unwrap()).abs() <= 1e-9,
                "{g} vs {o}"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(shift_out.join("results.csv")).unwrap(),
        std::fs::read_to_string(fixture().join("official_results.csv")).unwrap()
    );
}

#[test]
fn bad_size_is_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vosbench"))
        .args(["synth", "--size", "8x8", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
