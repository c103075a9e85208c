//! Parity of EdgeTAM's own modules (RepViT trunk, spatial perceiver) with the official PyTorch
//! code, on the committed small fixture `tests/fixtures/edgetam_test` written by
//! `tests/reference/make_edgetam_fixtures.py`. Every stage is fed the reference's own inputs and
//! must match to relative L2 <= 1e-4 in f32.

use crate::common::{assert_close, get, load_tensors, pt_var_builder, test_config};
use candle_core::Tensor;
use std::collections::HashMap;
use vosbench::config::{ModelConfig, TrunkConfig};
use vosbench::nn::ModelOptions;
use vosbench::sam2::backbones::repvit::RepVit;
use vosbench::sam2::perceiver::PerceiverResampler;

const TOL: f64 = 1e-4;

/// The fixture under test and its variant: the committed `edgetam_test`, or, for a one-off check
/// at another size, `EDGETAM_FIXTURE=<folder under tests/fixtures>` plus
/// `EDGETAM_VARIANT=<variant JSON path>` (build it with make_edgetam_fixtures.py --variant --out).
fn fixture() -> (&'static str, ModelConfig) {
    match std::env::var("EDGETAM_FIXTURE") {
        Ok(name) => {
            let path = std::env::var("EDGETAM_VARIANT").expect("EDGETAM_VARIANT: variant JSON");
            let cfg = ModelConfig::from_file(std::path::Path::new(&path)).expect("variant JSON");
            (Box::leak(name.into_boxed_str()), cfg)
        }
        Err(_) => ("edgetam_test", test_config("edgetam_test")),
    }
}

fn repvit_cfg(cfg: &ModelConfig) -> vosbench::config::RepVitConfig {
    match &cfg.image_encoder.trunk {
        TrunkConfig::Repvit(c) => c.clone(),
        other => panic!("{} has a non-RepViT trunk: {other:?}", cfg.name),
    }
}

/// Run the trunk on the fixture image and compare every intermediate the fixture holds and the
/// four stage outputs.
fn check_trunk(trunk: &RepVit, label: &str) {
    let (fx, cfg) = fixture();
    let t = load_tensors(fx, "stages.safetensors");
    let mut taps: HashMap<String, Tensor> = HashMap::new();
    let outs = trunk
        .forward_with_taps(&get(&t, "image"), &mut |name, x| {
            taps.insert(name.to_string(), x.clone());
        })
        .expect("trunk forward");
    assert_eq!(outs.len(), 4);
    let mut compared = 0;
    let mut names: Vec<_> = taps.keys().cloned().collect();
    names.sort();
    for name in names {
        // the last block of each stage is stored once, as trunk.out.{s}
        if let Some(want) = t.get(&name) {
            assert_close(&format!("{label} {name}"), &taps[&name], want, TOL);
            compared += 1;
        }
    }
    // the stem, the downsamples of stages 1.., and every block but the last of each stage
    let depths = repvit_cfg(&cfg).depths;
    let want = 1 + (depths.len() - 1) + depths.iter().map(|d| d - 1).sum::<usize>();
    assert_eq!(
        compared, want,
        "{label}: fixture intermediates not all compared"
    );
    for (k, y) in outs.iter().enumerate() {
        assert_close(
            &format!("{label} trunk.out.{k}"),
            y,
            &get(&t, &format!("trunk.out.{k}")),
            TOL,
        );
    }
}

#[test]
fn repvit_unfolded_matches_reference() {
    let (fx, cfg) = fixture();
    let vb = pt_var_builder(fx, "model.pt");
    let trunk = RepVit::new_unfolded(
        &repvit_cfg(&cfg),
        &ModelOptions::default(),
        vb.pp("image_encoder.trunk"),
    )
    .expect("build");
    check_trunk(&trunk, "unfolded");
}

#[test]
fn repvit_folded_matches_reference() {
    let (fx, cfg) = fixture();
    let vb = pt_var_builder(fx, "model.pt");
    let trunk = RepVit::new(
        &repvit_cfg(&cfg),
        &ModelOptions::default(),
        vb.pp("image_encoder.trunk"),
    )
    .expect("build");
    check_trunk(&trunk, "folded");
}

fn perceiver() -> PerceiverResampler {
    let (fx, cfg) = fixture();
    let pcfg = cfg
        .spatial_perceiver
        .as_ref()
        .expect("the variant has a perceiver");
    let vb = pt_var_builder(fx, "model.pt");
    PerceiverResampler::new(pcfg, &ModelOptions::default(), vb.pp("spatial_perceiver"))
        .expect("build perceiver")
}

#[test]
fn perceiver_matches_reference() {
    let (fx, cfg) = fixture();
    let t = load_tensors(fx, "stages.safetensors");
    let p = perceiver();
    let mut taps: HashMap<String, Tensor> = HashMap::new();
    let (lat, pos) = p
        .forward_with_taps(
            &get(&t, "perceiver.in.features"),
            &get(&t, "perceiver.in.pos"),
            &mut |n, x| {
                taps.insert(n.to_string(), x.clone());
            },
        )
        .expect("perceiver forward");
    let depth = cfg.spatial_perceiver.as_ref().unwrap().depth;
    for path in ["1d", "2d"] {
        for i in 0..depth {
            let name = format!("perceiver.{path}.layers.{i}");
            let got = taps.get(&name).unwrap_or_else(|| panic!("no tap {name}"));
            assert_close(&name, got, &get(&t, &name), TOL);
        }
    }
    assert_close(
        "perceiver.out.features",
        &lat,
        &get(&t, "perceiver.out.features"),
        TOL,
    );
    assert_close(
        "perceiver.out.pos",
        &pos,
        &get(&t, "perceiver.out.pos"),
        TOL,
    );
}

/// The official 2D path cannot run several objects; this port must give each object exactly what
/// it gives that object alone.
#[test]
fn perceiver_batches_objects_independently() {
    let t = load_tensors(fixture().0, "stages.safetensors");
    let p = perceiver();
    let x = get(&t, "perceiver.in.features");
    let pos = get(&t, "perceiver.in.pos");
    let x2 = Tensor::cat(&[&x, &(x.flip(&[3]).unwrap() * 0.5).unwrap()], 0).unwrap();
    let pos2 = Tensor::cat(&[&pos, &pos], 0).unwrap();
    let (lat_b, pos_b) = p.forward(&x2, &pos2).unwrap();
    for i in 0..2 {
        let (lat_1, pos_1) = p.forward(&x2.narrow(0, i, 1).unwrap(), &pos).unwrap();
        assert_close(
            &format!("batched object {i} latents"),
            &lat_b.narrow(0, i, 1).unwrap(),
            &lat_1,
            1e-6,
        );
        assert_close(
            &format!("batched object {i} pos"),
            &pos_b.narrow(0, i, 1).unwrap(),
            &pos_1,
            1e-6,
        );
    }
}

#[test]
fn perceiver_rejects_mismatched_input() {
    let (_, cfg) = fixture();
    let (c, e) = (cfg.mem_dim(), cfg.embedding_size());
    let p = perceiver();
    let dev = candle_core::Device::Cpu;
    let x = Tensor::zeros((1, c, e - 1, e - 1), candle_core::DType::F32, &dev).unwrap();
    assert!(
        p.forward(&x, &x).is_err(),
        "a side of e-1 does not split into the window grid"
    );
    let x = Tensor::zeros((1, c / 2, e, e), candle_core::DType::F32, &dev).unwrap();
    assert!(p.forward(&x, &x).is_err(), "wrong channel count");
}

/// The shared image encoder wired with the RepViT trunk: the scalped neck level, then every kept
/// FPN level and its position encoding.
#[test]
fn image_encoder_matches_reference() {
    use vosbench::sam2::backbones::image_encoder::ImageEncoder;
    let (fx, cfg) = fixture();
    let t = load_tensors(fx, "stages.safetensors");
    let vb = pt_var_builder(fx, "model.pt");
    let enc = ImageEncoder::new(&cfg, &ModelOptions::default(), vb.pp("image_encoder"))
        .expect("build image encoder");
    let image = get(&t, "image");
    let xs = enc.trunk().forward(&image).expect("trunk");
    let (fpn, pos) = enc.neck().forward(&xs).expect("neck");
    assert_eq!(fpn.len(), 4);
    assert_close("neck.fpn.3", &fpn[3], &get(&t, "neck.fpn.3"), TOL);
    assert_close("neck.pos.3", &pos[3], &get(&t, "neck.pos.3"), TOL);
    let out = enc.forward(&image).expect("image encoder");
    assert_eq!(out.backbone_fpn.len(), 3);
    for k in 0..3 {
        let (f, p) = (&out.backbone_fpn[k], &out.vision_pos_enc[k]);
        assert_close(
            &format!("encoder.backbone_fpn.{k}"),
            f,
            &get(&t, &format!("encoder.backbone_fpn.{k}")),
            TOL,
        );
        assert_close(
            &format!("encoder.vision_pos_enc.{k}"),
            p,
            &get(&t, &format!("encoder.vision_pos_enc.{k}")),
            TOL,
        );
    }
    assert_close(
        "vision_features",
        &out.vision_features,
        &get(&t, "encoder.backbone_fpn.2"),
        TOL,
    );
}
