//! The transformers (HF) key mapping: layout detection, name mapping both ways, and the
//! regrouping of a state dict against a variant's key spec. The input is a list of tensor
//! names (one per line); each name gets a tiny tensor whose shape comes from the name's bytes.
//! The specs are built once (building them per input made this target ~60 ms/input).
#![no_main]
use candle_core::{DType, Device, Tensor};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use vosbench::weights::hf_layout::{detect_layout, hf_to_original, original_to_hf};
use vosbench::weights::spec::{expected_tensors, TensorSpec};

fn specs() -> &'static [(Vec<TensorSpec>, bool)] {
    static S: OnceLock<Vec<(Vec<TensorSpec>, bool)>> = OnceLock::new();
    S.get_or_init(|| {
        ["sam2.1_hiera_tiny_points", "edgetam_points"]
            .iter()
            .map(|tag| {
                let m = vosbench::bench::plan::parse_models(tag, None).expect("builtin variant");
                let cfg = &m[0].config;
                let edgetam = vosbench::weights::hf_layout::is_edgetam(cfg);
                (expected_tensors(cfg).expect("spec"), edgetam)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    vosbench_fuzz::init();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let names: Vec<&str> = text.lines().take(64).collect();
    let _ = detect_layout(names.iter().copied());
    let which = data.first().map_or(0, |b| (b & 1) as usize);
    let (specs, edgetam) = &specs()[which];
    let mut tensors = Vec::new();
    for n in &names {
        let _ = original_to_hf(n, *edgetam);
        let k = n.len() % 4 + 1;
        let shape: Vec<usize> = match n.len() % 3 {
            0 => vec![k],
            1 => vec![k, 2],
            _ => vec![2, k, 1],
        };
        let t = Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("tiny tensor");
        tensors.push((n.to_string(), t));
    }
    let _ = hf_to_original(Path::new("fuzz"), tensors, specs, *edgetam);
});
