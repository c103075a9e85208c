//! Helpers shared by the parity tests: fixture loading, the test variants, and the relative-L2
//! comparison every stage is judged by.
#![allow(dead_code)]

pub mod tracking;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use vosbench::config::ModelConfig;

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
    candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load fixture {}: {e}", p.display()))
}

/// The fixture's original-format PyTorch checkpoint (`{"model": state_dict}`) as a VarBuilder.
pub fn pt_var_builder(fixture: &str, file: &str) -> VarBuilder<'static> {
    let p = fixture_dir(fixture).join(file);
    let tensors = candle_core::pickle::read_all_with_key(&p, Some("model"))
        .unwrap_or_else(|e| panic!("cannot read checkpoint {}: {e}", p.display()));
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)
}

/// The tensors of the fixture's original-format checkpoint (`model.pt`), with those of
/// `tests/fixtures/<video>/weight_overrides.safetensors` put in their place when `video` has that
/// file (each override must name a checkpoint key of the same shape).
pub fn checkpoint_tensors(fixture: &str, video: Option<&str>) -> HashMap<String, Tensor> {
    let p = fixture_dir(fixture).join("model.pt");
    let mut map: HashMap<String, Tensor> =
        candle_core::pickle::read_all_with_key(&p, Some("model"))
            .unwrap_or_else(|e| panic!("cannot read checkpoint {}: {e}", p.display()))
            .into_iter()
            .collect();
    let Some(video) = video else { return map };
    if !fixture_dir(video)
        .join("weight_overrides.safetensors")
        .exists()
    {
        return map;
    }
    let overrides = load_tensors(video, "weight_overrides.safetensors");
    assert!(!overrides.is_empty());
    for (k, v) in overrides {
        let old = map
            .get(&k)
            .unwrap_or_else(|| panic!("override {k} is not a checkpoint key"));
        assert_eq!(old.dims(), v.dims(), "override {k}: shape");
        map.insert(k, v);
    }
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

/// Fetch a named tensor from a fixture map, with a clear panic if the script did not write it.
pub fn get(t: &HashMap<String, Tensor>, name: &str) -> Tensor {
    t.get(name)
        .unwrap_or_else(|| panic!("fixture has no tensor '{name}'"))
        .clone()
}

/// ||a - b|| / ||b||, computed in f64.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let num = (&a - &b)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let den = b
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(num.is_finite(), "non-finite values");
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
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
