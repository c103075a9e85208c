//! The real binary on bad input: one `error:` line on stderr and exit code 2, never a panic; and
//! `info` / `fetch` on what they should print and do.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

fn vosbench(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vosbench"));
    c.args(args).env_remove("HF_ENDPOINT").env("NO_COLOR", "1");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run vosbench")
}

/// Assert exit code 2 and exactly one stderr line, containing every `needle`.
fn assert_user_error(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    err
}

fn test_json() -> String {
    common::root()
        .join("tests/models/sam2.1_test.json")
        .display()
        .to_string()
}

fn fixture_pt() -> std::path::PathBuf {
    common::fixture_dir("sam2_test").join("model.pt")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn convert_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pt");
    let out = vosbench(
        &[
            "convert",
            s(&missing),
            "--model",
            &test_json(),
            "-o",
            s(&dir.path().join("o.safetensors")),
        ],
        &[],
    );
    assert_user_error(&out, &["nope.pt: no such file"]);
}

#[test]
fn convert_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("random.pt");
    // Deterministic noise that is neither a zip nor a safetensors header.
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    let o = dir.path().join("o.safetensors");
    let out = vosbench(
        &["convert", s(&junk), "--model", &test_json(), "-o", s(&o)],
        &[],
    );
    assert_user_error(
        &out,
        &[
            "random.pt",
            "not a PyTorch (.pt zip) or safetensors checkpoint",
        ],
    );
    assert!(!o.exists());
}

#[test]
fn convert_truncated_zip() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixture_pt()).unwrap();
    let half = dir.path().join("half.pt");
    std::fs::write(&half, &full[..full.len() / 2]).unwrap();
    let o = dir.path().join("o.safetensors");
    let out = vosbench(
        &["convert", s(&half), "--model", &test_json(), "-o", s(&o)],
        &[],
    );
    assert_user_error(
        &out,
        &["half.pt", "truncated or corrupt PyTorch zip archive"],
    );
    assert!(!o.exists());
}

#[test]
fn convert_truncated_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let ok = vosbench(
        &[
            "convert",
            s(&fixture_pt()),
            "--model",
            &test_json(),
            "-o",
            s(&good),
        ],
        &[],
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let full = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let out = vosbench(
        &[
            "convert",
            s(&cut),
            "--model",
            &test_json(),
            "-o",
            s(&dir.path().join("o.safetensors")),
        ],
        &[],
    );
    assert_user_error(&out, &["cut.safetensors", "safetensors"]);
}

#[test]
fn convert_wrong_variant() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("o.safetensors");
    let out = vosbench(
        &[
            "convert",
            s(&fixture_pt()),
            "--model",
            "sam2.1_hiera_tiny",
            "-o",
            s(&o),
        ],
        &[],
    );
    assert_user_error(
        &out,
        &[
            "does not match variant sam2.1_hiera_tiny",
            "maskmem_tpos_enc is [7, 1, 1, 32] but the variant needs [7, 1, 1, 64]",
            "missing keys: image_encoder.trunk.blocks.8.norm1.weight [384]",
            "unexpected keys: image_encoder.trunk.blocks.6.proj.bias [128]",
        ],
    );
    assert!(!o.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temporary file left"
    );
}

#[test]
fn unknown_model() {
    let out = vosbench(&["convert", s(&fixture_pt()), "--model", "sam3"], &[]);
    assert_user_error(&out, &["unknown model 'sam3'", "sam2.1_hiera_tiny"]);
    let out = vosbench(&["info", "sam3"], &[]);
    assert_user_error(&out, &["unknown model 'sam3'"]);
}

#[test]
fn bad_dtype() {
    let out = vosbench(
        &[
            "convert",
            s(&fixture_pt()),
            "--model",
            &test_json(),
            "--dtype",
            "f8",
        ],
        &[],
    );
    assert_user_error(&out, &["unknown dtype 'f8'"]);
}

#[test]
fn convert_then_info_reports_a_valid_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path();
    let out = vosbench(
        &[
            "convert",
            s(&fixture_pt()),
            "--model",
            &test_json(),
            "--weights-dir",
            s(wd),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("371 tensors, 1675186 parameters, f32"),
        "{stdout}"
    );
    assert!(wd.join("sam2.1_test.safetensors").is_file());
    let out = vosbench(
        &["info", &test_json(), "--weights-dir", s(wd), "--json"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "converted and valid");
    assert_eq!(v["parameters"], 1675186);
    assert_eq!(v["state_dict_keys"], 371);
}

#[test]
fn info_table_lists_the_five_parameter_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = vosbench(&["info", "--weights-dir", s(dir.path())], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (name, params) in [
        ("sam2.1_hiera_tiny", "38962498"),
        ("sam2.1_hiera_small", "46060354"),
        ("sam2.1_hiera_base_plus", "80850178"),
        ("sam2.1_hiera_large", "224446642"),
        ("edgetam", "13895794"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        assert!(line.contains(params), "{line}");
        assert!(line.ends_with("missing"), "{line}");
    }
}

#[test]
fn fetch_offline_names_the_file_to_place_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path().join("w");
    let out = vosbench(
        &["fetch", "sam2_tiny", "--weights-dir", s(&wd)],
        &[("HF_ENDPOINT", "http://127.0.0.1:9")],
    );
    let placed = wd.join("sam2.1_hiera_tiny.pt");
    assert_user_error(
        &out,
        &[
            "cannot download sam2.1_hiera_tiny.pt from hub repository facebook/sam2.1-hiera-tiny",
            "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt",
            &format!("place it at {}", placed.display()),
        ],
    );
    assert!(!wd.join("sam2.1_hiera_tiny.safetensors").exists());
}

#[test]
fn fetch_converts_a_hand_placed_original_once() {
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path();
    std::fs::copy(fixture_pt(), wd.join("sam2.1_test.pt")).unwrap();
    // The endpoint is unreachable: nothing may be downloaded.
    let env = [("HF_ENDPOINT", "http://127.0.0.1:9")];
    let out = vosbench(&["fetch", &test_json(), "--weights-dir", s(wd)], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("converted the local original"));
    let out = vosbench(&["fetch", &test_json(), "--weights-dir", s(wd)], &env);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already present and valid"));
}

#[test]
fn version_and_help() {
    let out = vosbench(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("vosbench "));
    for sub in ["convert", "fetch", "info"] {
        let out = vosbench(&[sub, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: vosbench"),
            "{sub}"
        );
    }
}
