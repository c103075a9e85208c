//! Seeded random weights (`vosbench::weights::random`) build a working model: the EdgeTAM test
//! variant's image features are finite and of a sane scale.

use candle_core::{DType, Device, Tensor};
use vosbench::weights::random::random_var_builder;

#[test]
fn edgetam_test_variant_runs_finite() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/edgetam_test.json");
    let cfg = vosbench::config::ModelConfig::from_file(&p).unwrap();
    let vb = random_var_builder(0, DType::F32, &Device::Cpu);
    let model = vosbench::sam2::sam2_base::Sam2Base::new(&cfg, vb).unwrap();
    let img = Tensor::randn(
        0f32,
        1.0,
        (1, 3, cfg.image_size, cfg.image_size),
        &Device::Cpu,
    )
    .unwrap();
    let feats = model.forward_image(&img).unwrap();
    let v = feats
        .vision_feat
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    assert!(std > 1e-4 && std < 1e3, "feature scale {std}");
}
