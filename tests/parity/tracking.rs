//! Whole-video parity of the tracker session with the official `SAM2VideoPredictor`
//! (fixture `video_test`: 24 JPEG frames, the `sam2_test` weights, a click on frame 0 tracked
//! forward, and a box on frame 8 tracked forward then backward in the same state).

use crate::common::tracking::{box_run, check_run, point_run};
use crate::common::{fixture_dir, get, load_tensors, pt_var_builder, test_config};
use candle_core::Device;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::memory_bank::Retention;
use vosbench::tracker::session::{Prompt, Session, SessionOptions};

fn model() -> Sam2Base {
    Sam2Base::new(
        &test_config("sam2.1_test"),
        pt_var_builder("sam2_test", "model.pt"),
    )
    .unwrap()
}

#[test]
fn point_prompt_forward_matches_official() {
    point_run(&model(), "video_test", Retention::Window);
}

#[test]
fn point_prompt_forward_full_retention_matches_official() {
    point_run(&model(), "video_test", Retention::Full);
}

#[test]
fn box_prompt_forward_then_backward_matches_official() {
    box_run(&model(), "video_test");
}

/// The same click run, reading the JPEG files with vosbench's own decoder (Pillow-exact), so
/// parity holds on real JPEGs, not only on pre-decoded pixels.
#[test]
fn point_prompt_from_jpeg_files_matches_official() {
    let m = model();
    let t = load_tensors("video_test", "tracking.safetensors");
    let frames = fixture_dir("video_test").join("frames");
    let mut s = Session::open(&m, &frames, &Device::Cpu, SessionOptions::default()).unwrap();
    let c = get(&t, "point.prompt.coords")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let prompt = Prompt {
        points: vec![(c[0], c[1], 1)],
        bbox: None,
    };
    s.add_prompt(0, 1, &prompt).unwrap();
    let mut results = Vec::new();
    s.propagate(None, None, false, |r| {
        results.push(r);
        Ok(())
    })
    .unwrap();
    check_run("point", &results, &t);
}
