//! Whole-video parity of the tracker session with the official EdgeTAM `SAM2VideoPredictor`
//! (the legacy batched predictor; fixture `edgetam_video`: the 24 JPEG frames of `video_test`,
//! the `edgetam_test` weights with the mask-logit shift of `weight_overrides.safetensors`, a click
//! on frame 0 tracked forward, and a box on frame 8 tracked forward then backward in the same
//! state). Made by tests/reference/make_edgetam_video_fixture.py.

use crate::common::tracking::{box_run, point_run};
use crate::common::{checkpoint_tensors, test_config};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::memory_bank::Retention;

const FIXTURE: &str = "edgetam_video";

/// The committed `edgetam_test` checkpoint with the fixture's few replaced tensors (the
/// hypernetwork output biases shifted so that masks cover part of the frame; see the script).
fn model() -> Sam2Base {
    let map = checkpoint_tensors("edgetam_test", Some(FIXTURE));
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    Sam2Base::new(&test_config("edgetam_test"), vb).unwrap()
}

#[test]
fn edgetam_point_prompt_forward_matches_official() {
    point_run(&model(), FIXTURE, Retention::Window);
}

#[test]
fn edgetam_point_prompt_forward_full_retention_matches_official() {
    point_run(&model(), FIXTURE, Retention::Full);
}

#[test]
fn edgetam_box_prompt_forward_then_backward_matches_official() {
    box_run(&model(), FIXTURE);
}
