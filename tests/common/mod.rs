//! Helpers shared by the test binaries (a module of each): fixture paths, the test variants, the
//! CLI runner, and thin panicking wrappers over the library's fixture readers and comparison
//! toolkit (`vosbench::compare`, `vosbench::parity::fixture`), which the `vosbench parity` runner uses too.
#![allow(dead_code)]

pub mod tracking;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use vosbench::compare;
use vosbench::config::ModelConfig;
use vosbench::parity::fixture;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_dir(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A test-only variant from `tests/models/<name>.json`.
pub fn test_config(name: &str) -> ModelConfig {
    ModelConfig::from_file(&root().join("tests/models").join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("test variant {name}: {e}"))
}

/// Every tensor of `tests/fixtures/<fixture>/<file>` (a safetensors file written by a reference
/// script under tests/reference/).
pub fn load_tensors(fixture: &str, file: &str) -> HashMap<String, Tensor> {
    let p = fixture_dir(fixture).join(file);
    fixture::read_tensors(&p).unwrap_or_else(|e| panic!("cannot load fixture: {e}"))
}

/// The tensors of `tests/fixtures/<fixture>/<file>`, an original-format PyTorch checkpoint
/// (`{"model": state_dict}`).
fn read_checkpoint(fixture: &str, file: &str) -> HashMap<String, Tensor> {
    let p = fixture_dir(fixture).join(file);
    fixture::read_checkpoint(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// The fixture's original-format PyTorch checkpoint (`{"model": state_dict}`) as a VarBuilder.
pub fn pt_var_builder(fixture: &str, file: &str) -> VarBuilder<'static> {
    VarBuilder::from_tensors(read_checkpoint(fixture, file), DType::F32, &Device::Cpu)
}

/// The tensors of the fixture's original-format checkpoint (`model.pt`), with those of
/// `tests/fixtures/<video>/weight_overrides.safetensors` put in their place when `video` has that
/// file (each override must name a checkpoint key of the same shape).
pub fn checkpoint_tensors(fixture: &str, video: Option<&str>) -> HashMap<String, Tensor> {
    let mut map = read_checkpoint(fixture, "model.pt");
    let Some(video) = video else { return map };
    let path = fixture_dir(video).join("weight_overrides.safetensors");
    if !path.exists() {
        return map;
    }
    let overrides = load_tensors(video, "weight_overrides.safetensors");
    assert!(!overrides.is_empty());
    let model_pt = fixture_dir(fixture).join("model.pt");
    fixture::apply_overrides(&mut map, overrides, &path, &model_pt)
        .unwrap_or_else(|e| panic!("{e}"));
    map
}

/// Run the `vosbench` binary of this build.
pub fn vosbench(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vosbench"))
        .args(args)
        .output()
        .expect("run vosbench")
}

/// Assert that `vosbench ARGS` is refused as bad input: exit code 2 and a one-line message on
/// stderr containing `needle`.
pub fn assert_bad_input(args: &[&str], needle: &str) {
    let o = vosbench(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit code 2 for {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "'{needle}' not in: {err}");
}

/// The fixture's click (`point.prompt.coords`, video pixels) as `--point X,Y`.
pub fn click_arg(t: &HashMap<String, Tensor>) -> String {
    let c = get(t, "point.prompt.coords")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    format!("{},{}", c[0], c[1])
}

/// The committed `sam2_test` checkpoint converted for `tests/models/sam2.1_test.json` into
/// `dir/sam2_test.safetensors`; its path.
pub fn converted_sam2_test(dir: &std::path::Path) -> String {
    let out = dir.join("sam2_test.safetensors");
    convert_fixture("sam2_test", "sam2.1_test", &out);
    out.to_str().unwrap().to_string()
}

/// `vosbench convert` of `tests/fixtures/<fixture>/model.pt` for the test variant
/// `tests/models/<variant>.json` into `out`; panics with its stderr if it fails.
pub fn convert_fixture(fixture: &str, variant: &str, out: &std::path::Path) {
    let model_pt = fixture_dir(fixture).join("model.pt");
    let cfg = root().join("tests/models").join(format!("{variant}.json"));
    let o = vosbench(&[
        "convert",
        model_pt.to_str().unwrap(),
        "--model",
        cfg.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "convert failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A mask PNG (0 background, anything else foreground) as `(mask [h * w] f32 0/1, width,
/// height)`, for [`compare::mask_overlap`] with a reference's logits.
pub fn read_mask(p: &std::path::Path) -> (Tensor, u32, u32) {
    let img = image::open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_luma8();
    let (w, h) = img.dimensions();
    let fg: Vec<f32> = img
        .into_raw()
        .into_iter()
        .map(|v| (v > 0) as u8 as f32)
        .collect();
    let n = fg.len();
    (Tensor::from_vec(fg, n, &Device::Cpu).unwrap(), w, h)
}

/// Fetch a named tensor from a fixture map, with a clear panic if the script did not write it.
pub fn get(t: &HashMap<String, Tensor>, name: &str) -> Tensor {
    t.get(name)
        .unwrap_or_else(|| panic!("fixture has no tensor '{name}'"))
        .clone()
}

/// ||a - b|| / ||b||, computed in f64 ([`compare::rel_l2`]); shapes must match and every value
/// be finite.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let d = compare::diff(a, b).unwrap();
    assert!(d.sq_err.is_finite(), "non-finite values");
    d.rel_l2()
}

/// max |a - b|, computed in f64 ([`compare::max_abs_diff`]).
pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    compare::max_abs_diff(a, b).unwrap()
}

/// Assert `got` matches `want` to relative L2 `tol`, and that `want` is not trivially zero.
pub fn assert_close(stage: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(
        got.dims(),
        want.dims(),
        "{stage}: shape {:?} vs reference {:?}",
        got.dims(),
        want.dims()
    );
    let norm = want
        .to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(
        norm > 0.0,
        "{stage}: the reference is all zeros, the comparison proves nothing"
    );
    let e = rel_l2(got, want);
    eprintln!("{stage}: rel L2 {e:.3e}");
    assert!(e <= tol, "{stage}: relative L2 error {e:.3e} > {tol:.0e}");
}
