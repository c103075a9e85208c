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
