//! Whole-video comparison helpers shared by the tracking parity tests.

use super::{fixture_dir, get, load_tensors, rel_l2};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use vosbench::compare;
use vosbench::parity::fixture;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::frames::RgbFrames;
use vosbench::tracker::memory_bank::Retention;
use vosbench::tracker::session::{FrameResult, Prompt, Session, SessionOptions};

/// (IoU of the two binarized masks, positive fraction of `b`): [`compare::mask_iou`].
pub fn iou(a: &Tensor, b: &Tensor) -> (f64, f64) {
    compare::mask_iou(a, b).unwrap()
}

/// Compare one run frame by frame against the reference: low-res logits (rel L2 <= 1e-3 per
/// frame and over all frames), mask IoU >= 0.999, object score, object pointer; the reference
/// must have the object present on most frames and masks neither empty nor full.
pub fn check_run(run: &str, results: &[FrameResult], t: &HashMap<String, Tensor>) {
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
    let mut worst_frame = (0.0f64, 0usize);
    let mut worst_iou = 1.0f64;
    for r in results {
        let i = r.frame_idx;
        let pre = format!("{run}.frame.{i}");
        let want_low = get(t, &format!("{pre}.low_res"));
        let e = rel_l2(&r.low_res_masks, &want_low);
        assert!(e <= 1e-3, "{pre}: low-res logits rel L2 {e:.3e} > 1e-3");
        if e > worst_frame.0 {
            worst_frame = (e, i);
        }
        low_got.push(r.low_res_masks.flatten_all().unwrap());
        low_want.push(want_low.flatten_all().unwrap());
        let (j, frac) = iou(&r.video_res_masks, &get(t, &format!("{pre}.video_res")));
        assert!(j >= 0.999, "{pre}: mask IoU {j:.5} < 0.999");
        worst_iou = worst_iou.min(j);
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
        "{run}: {} frames, low-res logits rel L2 over all frames {all:.3e}, worst frame {} \
         ({:.3e}), lowest mask IoU {worst_iou:.6}",
        results.len(),
        worst_frame.1,
        worst_frame.0
    );
    assert!(all <= 1e-3);
    assert!(
        present * 4 >= results.len() * 3,
        "{run}: object present on only {present} of {} frames: the comparison would prove little",
        results.len()
    );
}

/// The fixture frames as Pillow decoded them (shared with the SAM 2.1 video fixture; isolates
/// JPEG decoding, which tests/units/preprocess.rs measures on its own).
pub fn pillow_frames() -> Box<RgbFrames> {
    let p = fixture_dir("video_test").join("pillow_rgb.safetensors");
    Box::new(fixture::pillow_frames(&p).unwrap())
}

fn prompt_iou_ok(r: &FrameResult, t: &HashMap<String, Tensor>, run: &str) {
    let (j, _) = iou(
        &r.video_res_masks,
        &get(t, &format!("{run}.prompt.video_res")),
    );
    assert!(j >= 0.999, "{run}: prompt frame IoU {j}");
}

/// The fixture's click (`point.prompt.*`): (frame, prompt).
pub fn point_prompt(t: &HashMap<String, Tensor>) -> (usize, Prompt) {
    let c = get(t, "point.prompt.coords")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let l = get(t, "point.prompt.labels")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let f = get(t, "point.prompt.frame").to_vec1::<f32>().unwrap()[0] as usize;
    let prompt = Prompt {
        points: vec![(c[0], c[1], l[0] as i32)],
        bbox: None,
    };
    (f, prompt)
}

/// The click run of a video fixture (`point.*`): prompt, track forward, compare every frame,
/// then check the memory bank holds exactly what `retention` keeps (prompt on frame 0, 24
/// frames, num_maskmem 7, 16 object pointers).
pub fn point_run(m: &Sam2Base, fixture: &str, retention: Retention) {
    let t = load_tensors(fixture, "tracking.safetensors");
    let mut s = Session::with_frames(
        m,
        pillow_frames(),
        &Device::Cpu,
        SessionOptions {
            retention,
            ..SessionOptions::default()
        },
    );
    let (f, prompt) = point_prompt(&t);
    prompt_iou_ok(&s.add_prompt(f, 1, &prompt).unwrap(), &t, "point");
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

/// The box run of a video fixture (`box.*`): prompt on a later frame, track forward, then
/// backward from the prompt frame in the same state, compare every yielded frame.
pub fn box_run(m: &Sam2Base, fixture: &str) {
    let t = load_tensors(fixture, "tracking.safetensors");
    let mut s = Session::with_frames(m, pillow_frames(), &Device::Cpu, SessionOptions::default());
    let b = get(&t, "box.prompt.box").to_vec1::<f32>().unwrap();
    let f = get(&t, "box.prompt.frame").to_vec1::<f32>().unwrap()[0] as usize;
    let prompt = Prompt {
        points: vec![],
        bbox: Some([b[0], b[1], b[2], b[3]]),
    };
    prompt_iou_ok(&s.add_prompt(f, 1, &prompt).unwrap(), &t, "box");
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
