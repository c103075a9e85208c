//! Whole-video parity of the tracker session with the official `SAM2VideoPredictor`
//! (fixture `video_test`: 24 JPEG frames, the `sam2_test` weights, a click on frame 0 tracked
//! forward, and a box on frame 8 tracked forward then backward in the same state).

mod common;

use candle_core::{DType, Device, Tensor};
use common::{fixture_dir, get, load_tensors, pt_var_builder, rel_l2, test_config};
use std::collections::HashMap;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::frames::RgbFrames;
use vosbench::tracker::memory_bank::Retention;
use vosbench::tracker::session::{FrameResult, Prompt, Session, SessionOptions};

fn iou(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let a = a.gt(0f32).unwrap().to_dtype(DType::F32).unwrap();
    let b = b.gt(0f32).unwrap().to_dtype(DType::F32).unwrap();
    let inter = (&a * &b)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let sa = a.sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    let sb = b.sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    let union = sa + sb - inter;
    let iou = if union == 0.0 { 1.0 } else { inter / union };
    (iou, sb / b.elem_count() as f64)
}

/// Compare one run frame by frame; returns how many frames had the object present.
fn check_run(run: &str, results: &[FrameResult], t: &HashMap<String, Tensor>) {
    let order: Vec<usize> = get(t, &format!("{run}.order"))
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as usize)
        .collect();
    assert_eq!(
        results.iter().map(|r| r.frame_idx).collect::<Vec<_>>(),
        order,
        "{run}: frame order"
    );
    let mut low_got = Vec::new();
    let mut low_want = Vec::new();
    let mut present = 0;
    for r in results {
        let i = r.frame_idx;
        let pre = format!("{run}.frame.{i}");
        let want_low = get(t, &format!("{pre}.low_res"));
        let e = rel_l2(&r.low_res_masks, &want_low);
        assert!(e <= 1e-3, "{pre}: low-res logits rel L2 {e:.3e} > 1e-3");
        low_got.push(r.low_res_masks.flatten_all().unwrap());
        low_want.push(want_low.flatten_all().unwrap());
        let (j, frac) = iou(&r.video_res_masks, &get(t, &format!("{pre}.video_res")));
        assert!(j >= 0.999, "{pre}: mask IoU {j:.5} < 0.999");
        assert!(
            frac > 0.0 && frac < 1.0,
            "{pre}: reference mask is empty or full ({frac})"
        );
        let s_want = get(t, &format!("{pre}.object_score"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        let s_got = r.object_score_logits[0].expect("object has an output");
        assert!(
            (s_got - s_want).abs() <= 1e-3 * s_want.abs().max(1.0),
            "{pre}: object score {s_got} vs {s_want}"
        );
        if s_want > 0.0 {
            present += 1;
        }
        let ptr = r.obj_ptrs[0].as_ref().expect("object pointer");
        let e = rel_l2(ptr, &get(t, &format!("{pre}.obj_ptr")));
        assert!(e <= 1e-3, "{pre}: obj_ptr rel L2 {e:.3e}");
    }
    let all = rel_l2(
        &Tensor::cat(&low_got, 0).unwrap(),
        &Tensor::cat(&low_want, 0).unwrap(),
    );
    eprintln!(
        "{run}: {} frames, low-res logits rel L2 over all frames {all:.3e}",
        results.len()
    );
    assert!(all <= 1e-3);
    assert!(
        present * 4 >= results.len() * 3,
        "{run}: object present on only {present} of {} frames: the comparison would prove little",
        results.len()
    );
}

fn model() -> Sam2Base {
    Sam2Base::new(
        &test_config("sam2.1_test"),
        pt_var_builder("sam2_test", "model.pt"),
    )
    .unwrap()
}

/// The fixture frames as Pillow decoded them for the reference (isolates JPEG decoding, which
/// tests/preprocess.rs measures on its own).
fn pillow_frames() -> Box<RgbFrames> {
    let t = load_tensors("video_test", "pillow_rgb.safetensors");
    let rgb = get(&t, "rgb");
    let (n, h, w, _) = rgb.dims4().unwrap();
    let frames = (0..n)
        .map(|i| {
            rgb.get(i)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<u8>()
                .unwrap()
        })
        .collect();
    Box::new(RgbFrames::new(frames, w as u32, h as u32).unwrap())
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
