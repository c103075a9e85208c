//! SAM2Base glue against the official `_forward_sam_heads`, `_encode_new_memory`, the object
//! pointer temporal encoding and `_prepare_memory_conditioned_features` (fixture `sam2_test`,
//! names in tests/reference/FIXTURES.md).

use crate::common::{assert_close, get, load_tensors, pt_var_builder, test_config};
use candle_core::{DType, Device, Tensor};
use vosbench::config::PostProcessing;
use vosbench::sam2::sam2_base::{FrameFeatures, Memory, PointInputs, Sam2Base};
use vosbench::tracker::memory_bank::{FrameOutput, OutputStore};

fn model() -> Sam2Base {
    let cfg = test_config("sam2.1_test");
    Sam2Base::new(&cfg, pt_var_builder("sam2_test", "model.pt")).expect("build model")
}

#[test]
fn forward_sam_heads_points_and_box() {
    let m = model();
    let t = load_tensors("sam2_test", "stages.safetensors");
    let emb = get(&t, "decoder.image_embeddings");
    let hr0 = get(&t, "decoder.high_res.0");
    let hr1 = get(&t, "decoder.high_res.1");
    for (case, multimask) in [("points", true), ("box", false)] {
        let pts = PointInputs {
            coords: get(&t, &format!("prompt.{case}.coords")),
            labels: get(&t, &format!("prompt.{case}.labels")),
        };
        let out = m
            .forward_sam_heads(
                &emb,
                Some(&pts),
                None,
                Some((&hr0, &hr1)),
                multimask,
                PostProcessing::On,
            )
            .unwrap();
        let pre = format!("heads.{case}");
        for (name, got) in [
            ("low_res_multimasks", &out.low_res_multimasks),
            ("high_res_multimasks", &out.high_res_multimasks),
            ("ious", &out.ious),
            ("low_res_masks", &out.low_res_masks),
            ("high_res_masks", &out.high_res_masks),
            ("obj_ptr", &out.obj_ptr),
            ("object_score_logits", &out.object_score_logits),
        ] {
            assert_close(
                &format!("{pre}.{name}"),
                got,
                &get(&t, &format!("{pre}.{name}")),
                1e-4,
            );
        }
    }
}

#[test]
fn encode_new_memory_with_and_without_object() {
    let m = model();
    let t = load_tensors("sam2_test", "stages.safetensors");
    let pix = get(&t, "memenc.pix_feat");
    let (_, cm, e, _) = get(&t, "encode_new_memory.pos.features").dims4().unwrap();
    for case in ["pos", "neg"] {
        let pre = format!("encode_new_memory.{case}");
        let from_pts = get(&t, &format!("{pre}.is_mask_from_pts"))
            .to_vec1::<f32>()
            .unwrap()[0]
            > 0.5;
        let mem = m
            .encode_new_memory(
                &pix,
                &get(&t, &format!("{pre}.pred_masks_high_res")),
                &get(&t, &format!("{pre}.object_score_logits")),
                from_pts,
                PostProcessing::On,
            )
            .unwrap();
        // token-major [1, e*e, M] -> [1, M, e, e]
        let f = mem
            .features
            .transpose(1, 2)
            .unwrap()
            .reshape((1, cm, e, e))
            .unwrap();
        let p = mem
            .pos
            .transpose(1, 2)
            .unwrap()
            .reshape((1, cm, e, e))
            .unwrap();
        assert_close(
            &format!("{pre}.features"),
            &f,
            &get(&t, &format!("{pre}.features")),
            1e-4,
        );
        assert_close(
            &format!("{pre}.pos"),
            &p,
            &get(&t, &format!("{pre}.pos")),
            1e-4,
        );
    }
    // the no-object embedding must make the two cases differ where the masks agree
    let d = (get(&t, "encode_new_memory.pos.features") - get(&t, "encode_new_memory.neg.features"))
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d > 0.0);
}

#[test]
fn object_pointer_temporal_encoding() {
    let m = model();
    let t = load_tensors("sam2_test", "stages.safetensors");
    let pos: Vec<i64> = get(&t, "obj_ptr_tpos.input")
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as i64)
        .collect();
    let got = m.pointer_pos_enc(&pos, 24, &Device::Cpu).unwrap();
    assert_close(
        "obj_ptr_tpos.output",
        &got,
        &get(&t, "obj_ptr_tpos.output"),
        1e-4,
    );
}

fn to_tokens(x: &Tensor) -> Tensor {
    // [1, M, e, e] -> [1, e*e, M]
    x.flatten_from(2)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
}

#[test]
fn prepare_memory_conditioned_features() {
    let m = model();
    let t = load_tensors("sam2_test", "stages.safetensors");
    let cfg = test_config("sam2.1_test");
    let pos_enc = to_tokens(&get(&t, "prepare_memory.maskmem_pos_enc"));
    let mut store = OutputStore::default();
    let out = |i: usize| FrameOutput {
        memory: Some(Memory {
            features: to_tokens(&get(&t, &format!("prepare_memory.maskmem_features.{i}")))
                .to_dtype(DType::BF16)
                .unwrap(),
            pos: pos_enc.clone(),
        }),
        pred_masks: None,
        obj_ptr: get(&t, &format!("prepare_memory.obj_ptr.{i}")),
        object_score_logits: Tensor::ones((1, 1), DType::F32, &Device::Cpu).unwrap(),
    };
    store.cond_insert(0, out(0));
    store.non_cond.insert(1, out(1));
    store.non_cond.insert(2, out(2));
    let frame = get(&t, "prepare_memory.frame_idx")
        .to_vec1::<f32>()
        .unwrap()[0] as usize;
    let nf = get(&t, "prepare_memory.num_frames")
        .to_vec1::<f32>()
        .unwrap()[0] as usize;
    let (mems, ptrs) = store.select(&cfg.tracker, frame, nf, false);
    assert_eq!(
        mems.iter().map(|r| r.t_pos).collect::<Vec<_>>(),
        vec![0, 5, 6]
    );
    assert_eq!(
        ptrs.iter().map(|p| p.pos).collect::<Vec<_>>(),
        vec![3, 1, 2]
    );
    let hw = get(&t, "memattn.curr").dim(0).unwrap();
    let c = cfg.hidden_dim();
    let e = (hw as f64).sqrt() as usize;
    let nchw = |x: Tensor| x.permute((1, 2, 0)).unwrap().reshape((1, c, e, e)).unwrap();
    let feats = FrameFeatures {
        vision_feat: nchw(get(&t, "memattn.curr")),
        vision_pos: nchw(get(&t, "memattn.curr_pos")),
        high_res: vec![],
    };
    let got = m
        .memory_conditioned_features(&feats, false, &mems, &ptrs, nf)
        .unwrap();
    assert_close(
        "prepare_memory.out",
        &got,
        &get(&t, "prepare_memory.out"),
        1e-4,
    );
}
