//! Whole-video parity of the tracker session with the official `SAM2VideoPredictor`
//! (fixture `video_test`: 24 JPEG frames, the `sam2_test` weights, a click on frame 0 tracked
//! forward, and a box on frame 8 tracked forward then backward in the same state).

mod common;

use candle_core::Device;
use common::tracking::{check_run, iou, pillow_frames};
use common::{fixture_dir, get, load_tensors, pt_var_builder, test_config};
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

fn run_point(retention: Retention) {
    let m = model();
    let t = load_tensors("video_test", "tracking.safetensors");
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
    let prompt = Prompt {
        points: vec![(c[0], c[1], l[0] as i32)],
        bbox: None,
    };
    let r = s.add_prompt(0, 1, &prompt).unwrap();
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
        // After frame 23 with the prompt on frame 0: pointers are kept within 15 frames of an
        // anchor (frames 1..15 near the prompt, 8..23 near the current frame), memories within 6
        // (frames 1..6 and 17..23) plus the conditioning frame's.
        Retention::Window => assert_eq!((non_cond, with_mem), (23, 1 + 6 + 7)),
        Retention::Full => assert_eq!((non_cond, with_mem), (23, 24)),
    }
}

#[test]
fn point_prompt_forward_matches_official() {
    run_point(Retention::Window);
}

#[test]
fn point_prompt_forward_full_retention_matches_official() {
    run_point(Retention::Full);
}

#[test]
fn box_prompt_forward_then_backward_matches_official() {
    let m = model();
    let t = load_tensors("video_test", "tracking.safetensors");
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
