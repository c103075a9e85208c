//! The parity runner behind `vosbench parity` (src/parity/) on the committed fixtures: every
//! stage a fixture holds must be compared (a silently skipped stage fails here) and match the
//! official code; whole-video tracking must match the official video predictor.

use crate::common::{fixture_dir, test_config};
use candle_core::{Device, Tensor};
use std::collections::{BTreeSet, HashMap};
use vosbench::parity::{self, Feed};

const TOL: f64 = 1e-4;

/// The fixture tensors that are stage inputs, from the contract in tests/reference/FIXTURES.md
/// (written out here independently of `parity::is_input`).
fn contract_input(name: &str) -> bool {
    let exact = [
        "image",
        "prompt.mask.input",
        "decoder.image_embeddings",
        "decoder.high_res.0",
        "decoder.high_res.1",
        "memenc.pix_feat",
        "memenc.mask",
        "perceiver.in.features",
        "perceiver.in.pos",
        "memattn.curr",
        "memattn.curr_pos",
        "memattn.memory",
        "memattn.memory_pos",
        "memattn.num_obj_ptr_tokens",
        "memattn.num_spatial_mem",
        "encode_new_memory.input_vision_feat",
        "obj_ptr_tpos.input",
        "obj_ptr_tpos.max_ptr",
        "prepare_memory.maskmem_pos_enc",
        "prepare_memory.frame_idx",
        "prepare_memory.num_frames",
    ];
    exact.contains(&name)
        || (name.starts_with("prompt.") && (name.ends_with(".coords") || name.ends_with(".labels")))
        || (name.starts_with("encode_new_memory.")
            && (name.ends_with(".pred_masks_high_res")
                || name.ends_with(".object_score_logits")
                || name.ends_with(".is_mask_from_pts")))
        || name.starts_with("prepare_memory.maskmem_features.")
        || name.starts_with("prepare_memory.obj_ptr.")
}

fn check_fixture(fixture: &str, variant: &str) -> Vec<parity::StageResult> {
    let cfg = test_config(variant);
    let dir = fixture_dir(fixture);
    let stages = parity::load_stages(&dir).expect("load stages");
    let vb =
        parity::load_weights(&dir.join("model.pt"), None, &cfg, &Device::Cpu).expect("weights");
    let results = parity::run_stages(&cfg, vb, &stages, &Device::Cpu).expect("run stages");
    let mut worst = (0.0f64, String::new());
    for r in &results {
        eprintln!(
            "{fixture} {:<48} {:>9} rel L2 {:.3e} max abs {:.3e} ({}) {}",
            r.name,
            r.numel,
            r.rel_l2,
            r.max_abs,
            r.feed.as_str(),
            r.note
        );
        assert!(
            r.ok(TOL),
            "{fixture} {}: rel L2 {:.3e} {}",
            r.name,
            r.rel_l2,
            r.note
        );
        if r.rel_l2 > worst.0 {
            worst = (r.rel_l2, r.name.clone());
        }
    }
    eprintln!(
        "{fixture}: {} stages, worst {} {:.3e}",
        results.len(),
        worst.1,
        worst.0
    );
    // every output the fixture holds was compared, exactly once
    let want: BTreeSet<&str> = stages
        .keys()
        .filter(|k| !contract_input(k))
        .map(String::as_str)
        .collect();
    let got: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let got_set: BTreeSet<&str> = got.iter().copied().collect();
    assert_eq!(
        got.len(),
        got_set.len(),
        "{fixture}: a stage compared twice"
    );
    let missing: Vec<_> = want.difference(&got_set).collect();
    assert!(
        missing.is_empty(),
        "{fixture}: stages not compared: {missing:?}"
    );
    assert_eq!(got_set, want);
    assert!(parity::uncompared(&stages, &results).is_empty());
    results
}

#[test]
fn sam2_fixture_every_stage() {
    let r = check_fixture("sam2_test", "sam2.1_test");
    // 119 tensors, of which the inputs: image, 4 prompt cases x (coords, labels), mask input,
    // 3 decoder inputs, 2 memenc, 5 memattn, 1 + 2 x 3 encode_new_memory, 2 obj_ptr_tpos,
    // 3 + 3 + 1 + 2 prepare_memory = 1 + 8 + 1 + 3 + 2 + 5 + 7 + 2 + 9 = 38
    assert_eq!(r.len(), 119 - 38);
    let by_name: HashMap<&str, Feed> = r.iter().map(|s| (s.name.as_str(), s.feed)).collect();
    assert_eq!(by_name["trunk.blocks.3"], Feed::Reference);
    assert_eq!(by_name["trunk.out.2"], Feed::Image);
}

#[test]
fn edgetam_fixture_every_stage() {
    let r = check_fixture("edgetam_test", "edgetam_test");
    assert!(r.iter().any(|s| s.name == "perceiver.out.features"));
    assert!(r.iter().any(|s| s.name == "trunk.stem"));
}

/// A stage whose output is in the fixture but whose input is not is an input error naming it.
#[test]
fn missing_input_is_named() {
    let cfg = test_config("sam2.1_test");
    let dir = fixture_dir("sam2_test");
    let mut stages = parity::load_stages(&dir).unwrap();
    stages.remove("trunk.blocks.4");
    let vb = parity::load_weights(&dir.join("model.pt"), None, &cfg, &Device::Cpu).unwrap();
    let err = parity::run_stages(&cfg, vb, &stages, &Device::Cpu).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("trunk.blocks.4"), "{err}");
    assert!(err.to_string().contains("trunk.blocks.5"), "{err}");
}

/// Absent stages are skipped; a wrong reference makes its stage fail, not the run.
#[test]
fn subset_and_wrong_reference() {
    let cfg = test_config("sam2.1_test");
    let dir = fixture_dir("sam2_test");
    let all = parity::load_stages(&dir).unwrap();
    let keep = [
        "memenc.pix_feat",
        "memenc.mask",
        "memenc.features",
        "memenc.pos",
        "obj_ptr_tpos.input",
        "obj_ptr_tpos.max_ptr",
        "obj_ptr_tpos.output",
    ];
    let mut stages: HashMap<String, Tensor> = keep
        .iter()
        .map(|k| (k.to_string(), all[*k].clone()))
        .collect();
    let bumped = (&stages["memenc.pos"] * 1.01).unwrap();
    stages.insert("memenc.pos".into(), bumped);
    let vb = parity::load_weights(&dir.join("model.pt"), None, &cfg, &Device::Cpu).unwrap();
    let r = parity::run_stages(&cfg, vb, &stages, &Device::Cpu).unwrap();
    let names: Vec<&str> = r.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["memenc.features", "memenc.pos", "obj_ptr_tpos.output"]
    );
    assert!(r[0].ok(TOL));
    assert!(
        !r[1].ok(TOL) && (r[1].rel_l2 - 0.01 / 1.01).abs() < 1e-4,
        "{}",
        r[1].rel_l2
    );
    assert!(r[2].ok(TOL));
}

#[test]
fn tracking_video_fixture() {
    let cfg = test_config("sam2.1_test");
    let vb = parity::load_weights(
        &fixture_dir("sam2_test").join("model.pt"),
        None,
        &cfg,
        &Device::Cpu,
    )
    .unwrap();
    let runs = parity::run_tracking(&cfg, vb, &fixture_dir("video_test"), &Device::Cpu).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run.as_str()).collect::<Vec<_>>(),
        ["point", "box"]
    );
    for run in &runs {
        assert!(
            run.prompt_iou >= 0.999,
            "{}: prompt IoU {}",
            run.run,
            run.prompt_iou
        );
        assert!(
            run.low_res_rel_l2_all <= 1e-3,
            "{}: {}",
            run.run,
            run.low_res_rel_l2_all
        );
        for f in &run.frames {
            assert!(
                f.low_res_rel_l2 <= 1e-3,
                "{} {}: {}",
                f.run,
                f.frame,
                f.low_res_rel_l2
            );
            assert!(f.iou >= 0.999, "{} {}: IoU {}", f.run, f.frame, f.iou);
            assert!(
                f.object_score_rel <= 1e-3,
                "{} {}: score {} vs {}",
                f.run,
                f.frame,
                f.object_score,
                f.ref_object_score
            );
            assert!(
                f.obj_ptr_rel_l2 <= 1e-3,
                "{} {}: obj_ptr {}",
                f.run,
                f.frame,
                f.obj_ptr_rel_l2
            );
            assert!(f.ref_fg_fraction > 0.0 && f.ref_fg_fraction < 1.0);
        }
        let worst = run
            .frames
            .iter()
            .map(|f| f.low_res_rel_l2)
            .fold(0.0, f64::max);
        eprintln!(
            "{}: {} frames, all-frames low-res rel L2 {:.3e}, worst frame {:.3e}, min IoU {:.5}",
            run.run,
            run.frames.len(),
            run.low_res_rel_l2_all,
            worst,
            run.frames.iter().map(|f| f.iou).fold(1.0, f64::min)
        );
    }
    assert_eq!(runs[0].frames.len(), 24);
    assert_eq!(runs[1].frames.len(), 25);
}
