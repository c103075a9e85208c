//! Whole-video parity of the tracker session with the official EdgeTAM `SAM2VideoPredictor`
//! (the legacy batched predictor; fixture `edgetam_video`: the 24 JPEG frames of `video_test`,
//! the `edgetam_test` weights with the mask-logit shift of `weight_overrides.safetensors`, a click
//! on frame 0 tracked forward, and a box on frame 8 tracked forward then backward in the same
//! state). Made by tests/reference/make_edgetam_video_fixture.py.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::tracking::{check_run, iou, pillow_frames};
use common::{fixture_dir, get, load_tensors, test_config};
use std::collections::HashMap;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::memory_bank::Retention;
use vosbench::tracker::session::{Prompt, Session, SessionOptions};

const FIXTURE: &str = "edgetam_video";

/// The committed `edgetam_test` checkpoint with the fixture's few replaced tensors (the
/// hypernetwork output biases shifted so that masks cover part of the frame; see the script).
fn model() -> Sam2Base {
    let p = fixture_dir("edgetam_test").join("model.pt");
    let mut map: HashMap<String, Tensor> =
        candle_core::pickle::read_all_with_key(&p, Some("model"))
            .unwrap_or_else(|e| panic!("cannot read checkpoint {}: {e}", p.display()))
            .into_iter()
            .collect();
    let overrides = load_tensors(FIXTURE, "weight_overrides.safetensors");
    assert!(!overrides.is_empty());
    for (k, v) in overrides {
        let old = map
            .get(&k)
            .unwrap_or_else(|| panic!("override {k} is not a checkpoint key"));
        assert_eq!(old.dims(), v.dims(), "override {k}: shape");
        map.insert(k, v);
    }
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    Sam2Base::new(&test_config("edgetam_test"), vb).unwrap()
}

fn run_point(retention: Retention) {
    let m = model();
    let t = load_tensors(FIXTURE, "tracking.safetensors");
    let mut s = Session::with_frames(
        &m,
        pillow_frames(),
        &Device::Cpu,
        SessionOptions { retention },
    );
    let c = get(&t, "point.prompt.coords")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let l = get(&t, "point.prompt.labels")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let f = get(&t, "point.prompt.frame").to_vec1::<f32>().unwrap()[0] as usize;
    let prompt = Prompt {
        points: vec![(c[0], c[1], l[0] as i32)],
        bbox: None,
    };
    let r = s.add_prompt(f, 1, &prompt).unwrap();
    let (j, _) = iou(&r.video_res_masks, &get(&t, "point.prompt.video_res"));
    assert!(j >= 0.999, "prompt frame IoU {j}");
    let mut results = Vec::new();
    s.propagate(None, None, false, |r| {
        results.push(r);
        Ok(())
    })
    .unwrap();
    check_run("point", &results, &t);
    let (cond, non_cond, with_mem) = s.bank_sizes()[&1];
    assert_eq!(cond, 1);
    match retention {
        // Same windows as SAM 2.1 (num_maskmem 7, 16 object pointers): after frame 23 with the
        // prompt on frame 0, memories of frames 1..6 and 17..23 plus the conditioning frame's.
        Retention::Window => assert_eq!((non_cond, with_mem), (23, 1 + 6 + 7)),
        Retention::Full => assert_eq!((non_cond, with_mem), (23, 24)),
    }
}

#[test]
fn edgetam_point_prompt_forward_matches_official() {
    run_point(Retention::Window);
}

#[test]
fn edgetam_point_prompt_forward_full_retention_matches_official() {
    run_point(Retention::Full);
}

#[test]
fn edgetam_box_prompt_forward_then_backward_matches_official() {
    let m = model();
    let t = load_tensors(FIXTURE, "tracking.safetensors");
    let mut s = Session::with_frames(&m, pillow_frames(), &Device::Cpu, SessionOptions::default());
    let b = get(&t, "box.prompt.box").to_vec1::<f32>().unwrap();
    let f = get(&t, "box.prompt.frame").to_vec1::<f32>().unwrap()[0] as usize;
    let prompt = Prompt {
        points: vec![],
        bbox: Some([b[0], b[1], b[2], b[3]]),
    };
    let r = s.add_prompt(f, 1, &prompt).unwrap();
    let (j, _) = iou(&r.video_res_masks, &get(&t, "box.prompt.video_res"));
    assert!(j >= 0.999, "prompt frame IoU {j}");
    let mut results = Vec::new();
    s.propagate(None, None, false, |r| {
        results.push(r);
        Ok(())
    })
    .unwrap();
    s.propagate(Some(f), None, true, |r| {
        results.push(r);
        Ok(())
    })
    .unwrap();
    check_run("box", &results, &t);
}
