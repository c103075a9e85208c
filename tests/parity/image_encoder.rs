//! Parity of the SAM 2.1 image encoder (Hiera trunk + FPN neck) with the official PyTorch code,
//! stage by stage, on tests/fixtures/sam2_test (see tests/reference/FIXTURES.md). Every stage is fed
//! the reference's own input, so errors never compound across stages; the end-to-end checks run the
//! whole encoder from the image.

use crate::common;

use crate::common::{assert_close, get, load_tensors, pt_var_builder, test_config};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use vosbench::nn::ModelOptions;
use vosbench::sam2::backbones::hieradet::Hiera;
use vosbench::sam2::backbones::image_encoder::{FpnNeck, ImageEncoder};

const FIXTURE: &str = "sam2_test";
const TOL: f64 = 1e-4;

fn fixtures() -> HashMap<String, Tensor> {
    load_tensors(FIXTURE, "stages.safetensors")
}

fn hiera() -> Hiera {
    let cfg = test_config("sam2.1_test");
    let vb = pt_var_builder(FIXTURE, "model.pt");
    Hiera::new(
        cfg.hiera().unwrap(),
        &ModelOptions::default(),
        vb.pp("image_encoder").pp("trunk"),
    )
    .unwrap()
    .with_image_size(cfg.image_size)
    .unwrap()
}

#[test]
fn patch_embed_and_pos_embed() {
    let t = fixtures();
    let trunk = hiera();
    let image = get(&t, "image");
    let pe = trunk.patch_embed(&image).unwrap();
    assert_close("trunk.patch_embed", &pe, &get(&t, "trunk.patch_embed"), TOL);
    let (_, h, w, _) = pe.dims4().unwrap();
    let pos = trunk.pos_embed_for((h, w)).unwrap();
    assert_close("trunk.pos_embed", &pos, &get(&t, "trunk.pos_embed"), TOL);
}

#[test]
fn every_block_from_reference_input() {
    let t = fixtures();
    let trunk = hiera();
    let n = trunk.blocks().len();
    assert_eq!(n, 8, "test variant has stages [1,2,3,2]");
    let mut x = get(&t, "trunk.patch_embed")
        .add(&get(&t, "trunk.pos_embed"))
        .unwrap();
    for (i, blk) in trunk.blocks().iter().enumerate() {
        let want = get(&t, &format!("trunk.blocks.{i}"));
        let got = blk.forward(&x).unwrap();
        let s = trunk.block_specs()[i];
        let what = format!(
            "trunk.blocks.{i} ({}->{} h{} w{}{})",
            s.dim,
            s.dim_out,
            s.num_heads,
            s.window_size,
            if s.q_pool { " Q" } else { "" }
        );
        assert_close(&what, &got, &want, TOL);
        x = want;
    }
}

#[test]
fn stage_outputs_end_to_end() {
    let t = fixtures();
    let trunk = hiera();
    let (outs, blocks) = trunk.forward_with_intermediates(&get(&t, "image")).unwrap();
    assert_eq!(outs.len(), 4);
    assert_eq!(blocks.len(), trunk.blocks().len());
    for (i, b) in blocks.iter().enumerate() {
        assert_close(
            &format!("e2e trunk.blocks.{i}"),
            b,
            &get(&t, &format!("trunk.blocks.{i}")),
            TOL,
        );
    }
    for (k, o) in outs.iter().enumerate() {
        assert_close(
            &format!("trunk.out.{k}"),
            o,
            &get(&t, &format!("trunk.out.{k}")),
            TOL,
        );
    }
}

#[test]
fn chunked_attention_matches_reference() {
    let t = fixtures();
    // 16x16 global block: 256 query rows, cut into uneven chunks of 100.
    let trunk = hiera().with_attention_chunk(Some(100));
    let outs = trunk.forward_stages(&get(&t, "image")).unwrap();
    for (k, o) in outs.iter().enumerate() {
        assert_close(
            &format!("chunked trunk.out.{k}"),
            o,
            &get(&t, &format!("trunk.out.{k}")),
            TOL,
        );
    }
}

#[test]
fn neck_levels_and_position_encodings() {
    let t = fixtures();
    let cfg = test_config("sam2.1_test");
    let vb = pt_var_builder(FIXTURE, "model.pt");
    let neck = FpnNeck::new(
        &cfg.image_encoder.neck,
        &ModelOptions::default(),
        vb.pp("image_encoder").pp("neck"),
    )
    .unwrap();
    let xs: Vec<Tensor> = (0..4).map(|k| get(&t, &format!("trunk.out.{k}"))).collect();
    let (fpn, pos) = neck.forward(&xs).unwrap();
    assert_eq!(fpn.len(), 4);
    for k in 0..4 {
        assert_close(
            &format!("neck.fpn.{k}"),
            &fpn[k],
            &get(&t, &format!("neck.fpn.{k}")),
            TOL,
        );
        assert_close(
            &format!("neck.pos.{k}"),
            &pos[k],
            &get(&t, &format!("neck.pos.{k}")),
            TOL,
        );
    }
}

#[test]
fn encoder_outputs_after_scalp() {
    let t = fixtures();
    let cfg = test_config("sam2.1_test");
    let vb = pt_var_builder(FIXTURE, "model.pt");
    let enc = ImageEncoder::new(&cfg, &ModelOptions::default(), vb.pp("image_encoder")).unwrap();
    let out = enc.forward(&get(&t, "image")).unwrap();
    assert_eq!(out.backbone_fpn.len(), 3, "scalp 1 keeps 3 of 4 levels");
    assert_eq!(out.vision_pos_enc.len(), 3);
    for k in 0..3 {
        let name = format!("encoder.backbone_fpn.{k}");
        assert_close(&name, &out.backbone_fpn[k], &get(&t, &name), TOL);
        let name = format!("encoder.vision_pos_enc.{k}");
        assert_close(&name, &out.vision_pos_enc[k], &get(&t, &name), TOL);
    }
    assert_close(
        "encoder.vision_features",
        &out.vision_features,
        &get(&t, "encoder.backbone_fpn.2"),
        TOL,
    );
}

/// The checkpoint's tensors with one replaced, as a VarBuilder.
fn tampered(key: &str, replacement: Tensor) -> VarBuilder<'static> {
    let p = common::fixture_dir(FIXTURE).join("model.pt");
    let tensors = candle_core::pickle::read_all_with_key(&p, Some("model")).unwrap();
    let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
    assert!(map.contains_key(key), "checkpoint has no {key}");
    map.insert(key.to_string(), replacement);
    VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)
}

#[test]
fn mis_shaped_weight_fails_with_its_key() {
    let cfg = test_config("sam2.1_test");
    for key in [
        "image_encoder.trunk.blocks.3.attn.qkv.weight",
        "image_encoder.trunk.pos_embed",
        "image_encoder.neck.convs.1.conv.weight",
    ] {
        let vb = tampered(
            key,
            Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap(),
        );
        let err = ImageEncoder::new(&cfg, &ModelOptions::default(), vb.pp("image_encoder"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "error for {key} does not name it: {err}");
    }
}

#[test]
fn missing_weight_fails_with_its_key() {
    let cfg = test_config("sam2.1_test");
    let p = common::fixture_dir(FIXTURE).join("model.pt");
    let tensors = candle_core::pickle::read_all_with_key(&p, Some("model")).unwrap();
    let key = "image_encoder.trunk.blocks.6.proj.bias";
    let map: HashMap<String, Tensor> = tensors.into_iter().filter(|(k, _)| k != key).collect();
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let err = ImageEncoder::new(&cfg, &ModelOptions::default(), vb.pp("image_encoder"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(key), "error does not name {key}: {err}");
}

/// Opt-in check on a full-size fixture written by
/// `make_sam2_fixtures.py --variant <v> --out <dir>` (not committed: ~1024x1024 tensors).
/// Run with `VOSBENCH_FULL_FIXTURE=<dir> VOSBENCH_FULL_VARIANT=<v> cargo test --test
/// parity_image_encoder -- --ignored`.
#[test]
#[ignore = "needs a full-size fixture: set VOSBENCH_FULL_FIXTURE and VOSBENCH_FULL_VARIANT"]
fn full_size_variant_from_env() {
    let dir = std::env::var("VOSBENCH_FULL_FIXTURE").expect("set VOSBENCH_FULL_FIXTURE");
    let variant = std::env::var("VOSBENCH_FULL_VARIANT").expect("set VOSBENCH_FULL_VARIANT");
    let dir = std::path::PathBuf::from(dir);
    let cfg = vosbench::config::Registry::builtin()
        .unwrap()
        .resolve(&variant)
        .unwrap();
    let t = candle_core::safetensors::load(dir.join("stages.safetensors"), &Device::Cpu).unwrap();
    let tensors =
        candle_core::pickle::read_all_with_key(dir.join("model.pt"), Some("model")).unwrap();
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let trunk = Hiera::new(
        cfg.hiera().unwrap(),
        &ModelOptions::default(),
        vb.pp("image_encoder").pp("trunk"),
    )
    .unwrap()
    .with_image_size(cfg.image_size)
    .unwrap();
    let image = get(&t, "image");
    assert_close(
        "trunk.patch_embed",
        &trunk.patch_embed(&image).unwrap(),
        &get(&t, "trunk.patch_embed"),
        TOL,
    );
    let s4 = cfg.image_size / 4;
    assert_close(
        "trunk.pos_embed",
        &trunk.pos_embed_for((s4, s4)).unwrap(),
        &get(&t, "trunk.pos_embed"),
        TOL,
    );
    let mut x = get(&t, "trunk.patch_embed")
        .add(&get(&t, "trunk.pos_embed"))
        .unwrap();
    for (i, blk) in trunk.blocks().iter().enumerate() {
        let want = get(&t, &format!("trunk.blocks.{i}"));
        assert_close(
            &format!("trunk.blocks.{i}"),
            &blk.forward(&x).unwrap(),
            &want,
            TOL,
        );
        x = want;
    }
    let enc = ImageEncoder::new(&cfg, &ModelOptions::default(), vb.pp("image_encoder")).unwrap();
    let out = enc.forward(&image).unwrap();
    for k in 0..out.backbone_fpn.len() {
        let name = format!("encoder.backbone_fpn.{k}");
        assert_close(&name, &out.backbone_fpn[k], &get(&t, &name), TOL);
        let name = format!("encoder.vision_pos_enc.{k}");
        assert_close(&name, &out.vision_pos_enc[k], &get(&t, &name), TOL);
    }
}
