//! Parity of RoPE, the memory encoder and memory attention with the official PyTorch code.
//!
//! Fixtures: `tests/fixtures/rope/rope.safetensors` (tests/reference/make_rope_fixtures.py),
//! `tests/fixtures/sam2_test/*` (make_sam2_fixtures.py) and `tests/fixtures/edgetam_test/*`
//! (make_edgetam_fixtures.py; EdgeTAM's memory attention uses `RoPEAttentionv2`).

use crate::common::{assert_close, get, load_tensors, max_abs, pt_var_builder, test_config};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use vosbench::nn::rope::{self, AxialRope};
use vosbench::nn::ModelOptions;
use vosbench::sam2::memory_attention::MemoryAttention;
use vosbench::sam2::memory_encoder::MemoryEncoder;

const STAGE_TOL: f64 = 1e-4;
const ROPE_TOL: f64 = 1e-6;

fn meta(t: &HashMap<String, Tensor>, name: &str) -> Vec<usize> {
    get(t, name)
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

/// Names `{prefix}{case}.meta` present in the fixture, sorted.
fn cases(t: &HashMap<String, Tensor>, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = t
        .keys()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .strip_suffix(".meta")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn rope_tables_match_compute_axial_cis() {
    let t = load_tensors("rope", "rope.safetensors");
    let names: Vec<String> = cases(&t, "table.");
    assert_eq!(
        names.len(),
        2,
        "expected the 64x64 and 16x16 tables, got {names:?}"
    );
    for name in names {
        let m = meta(&t, &format!("table.{name}.meta"));
        let (dim, w, h) = (m[0], m[1], m[2]);
        let rope = AxialRope::new(dim, 10000.0).unwrap();
        let (cos, sin) = rope.host_table(w, h);
        let half = dim / 2;
        let rows = meta(&t, &format!("table.{name}.rows"));
        let pick = |v: &[f32]| -> Tensor {
            let mut out = Vec::with_capacity(rows.len() * half);
            for &r in &rows {
                out.extend_from_slice(&v[r * half..(r + 1) * half]);
            }
            Tensor::from_vec(out, (rows.len(), half), &Device::Cpu).unwrap()
        };
        for (part, mine) in [("cos", pick(&cos)), ("sin", pick(&sin))] {
            let want = get(&t, &format!("table.{name}.{part}"));
            let e = max_abs(&mine, &want);
            eprintln!("table {name} {part}: max abs {e:.3e}");
            assert!(e <= ROPE_TOL, "table {name} {part}: max abs {e:.3e}");
        }
    }
}

#[test]
fn rope_v1_matches_apply_rotary_enc() {
    let t = load_tensors("rope", "rope.safetensors");
    let names = cases(&t, "v1.");
    assert!(names.len() >= 6, "too few v1 cases: {names:?}");
    for name in names {
        let m = meta(&t, &format!("v1.{name}.meta"));
        let (w, h, n_ptr, repeat_k) = (m[0], m[1], m[2], m[3] != 0);
        let q = get(&t, &format!("v1.{name}.q"));
        let k = get(&t, &format!("v1.{name}.k"));
        let rope = AxialRope::new(q.dim(3).unwrap(), 10000.0).unwrap();
        let table = rope.table(w, h, &Device::Cpu).unwrap();
        let q_out = rope::rotate(&q, &table).unwrap();
        let k_out = rope::rotate_leading(&k, n_ptr, |k| {
            if repeat_k {
                rope::rotate_repeated(k, &table)
            } else {
                rope::rotate(k, &table)
            }
        })
        .unwrap();
        for (part, got) in [("q_out", q_out), ("k_out", k_out)] {
            let want = get(&t, &format!("v1.{name}.{part}"));
            let e = max_abs(&got, &want);
            assert_close(
                &format!("v1.{name}.{part} (max abs {e:.2e})"),
                &got,
                &want,
                ROPE_TOL,
            );
            assert!(e <= 1e-5, "v1.{name}.{part}: max abs {e:.3e}");
        }
        // The pointer tokens come back untouched, bit for bit.
        if n_ptr > 0 {
            let nk = k.dim(2).unwrap();
            let want = k.narrow(2, nk - n_ptr, n_ptr).unwrap();
            let got = get(&t, &format!("v1.{name}.k_out"))
                .narrow(2, nk - n_ptr, n_ptr)
                .unwrap();
            assert_eq!(max_abs(&got, &want), 0.0);
        }
    }
}

#[test]
fn rope_v2_matches_apply_rotary_enc_v2() {
    let t = load_tensors("rope", "rope.safetensors");
    let names = cases(&t, "v2.");
    assert!(names.len() >= 5, "too few v2 cases: {names:?}");
    for name in names {
        let m = meta(&t, &format!("v2.{name}.meta"));
        let (qw, qh, kw, kh, n_ptr, frames) = (m[0], m[1], m[2], m[3], m[4], m[5]);
        let q = get(&t, &format!("v2.{name}.q"));
        let k = get(&t, &format!("v2.{name}.k"));
        let rope = AxialRope::new(q.dim(3).unwrap(), 10000.0).unwrap();
        let tq = rope.table(qw, qh, &Device::Cpu).unwrap();
        let tk = rope.table(kw, kh, &Device::Cpu).unwrap();
        let q_out = rope::apply_rotary_enc_v2(&q, &tq, 1).unwrap();
        let k_out =
            rope::rotate_leading(&k, n_ptr, |k| rope::apply_rotary_enc_v2(k, &tk, frames)).unwrap();
        for (part, got) in [("q_out", q_out), ("k_out", k_out)] {
            let want = get(&t, &format!("v2.{name}.{part}"));
            let e = max_abs(&got, &want);
            assert_close(
                &format!("v2.{name}.{part} (max abs {e:.2e})"),
                &got,
                &want,
                ROPE_TOL,
            );
            assert!(e <= 1e-5, "v2.{name}.{part}: max abs {e:.3e}");
        }
    }
}

fn check_memory_encoder(fixture: &str, variant: &str) {
    let t = load_tensors(fixture, "stages.safetensors");
    let cfg = test_config(variant);
    let vb = pt_var_builder(fixture, "model.pt");
    let enc = MemoryEncoder::new(
        &cfg.memory_encoder,
        &ModelOptions::default(),
        vb.pp("memory_encoder"),
    )
    .unwrap();
    let s = enc
        .forward_stages(&get(&t, "memenc.pix_feat"), &get(&t, "memenc.mask"), true)
        .unwrap();
    assert_close(
        &format!("{fixture} memenc.mask_downsampler"),
        &s.mask_downsampled,
        &get(&t, "memenc.mask_downsampler"),
        STAGE_TOL,
    );
    assert_close(
        &format!("{fixture} memenc.fuser"),
        &s.fused,
        &get(&t, "memenc.fuser"),
        STAGE_TOL,
    );
    assert_close(
        &format!("{fixture} memenc.features"),
        &s.features,
        &get(&t, "memenc.features"),
        STAGE_TOL,
    );
    assert_close(
        &format!("{fixture} memenc.pos"),
        &s.pos,
        &get(&t, "memenc.pos"),
        STAGE_TOL,
    );
    // The plain entry point gives the same tensors.
    let (f, p) = enc
        .forward(&get(&t, "memenc.pix_feat"), &get(&t, "memenc.mask"), true)
        .unwrap();
    assert_eq!(max_abs(&f, &s.features), 0.0);
    assert_eq!(max_abs(&p, &s.pos), 0.0);
}

fn check_memory_attention(fixture: &str, variant: &str) {
    let t = load_tensors(fixture, "stages.safetensors");
    let cfg = test_config(variant);
    let vb = pt_var_builder(fixture, "model.pt");
    let mut ma = MemoryAttention::new(
        &cfg.memory_attention,
        &ModelOptions::default(),
        vb.pp("memory_attention"),
    )
    .unwrap();
    let curr = get(&t, "memattn.curr");
    let curr_pos = get(&t, "memattn.curr_pos");
    let memory = get(&t, "memattn.memory");
    let memory_pos = get(&t, "memattn.memory_pos");
    let n_ptr = get(&t, "memattn.num_obj_ptr_tokens")
        .to_vec1::<f32>()
        .unwrap()[0] as usize;
    assert!(
        n_ptr > 0,
        "the fixture should exercise object-pointer tokens"
    );
    let frames = t
        .get("memattn.num_spatial_mem")
        .map(|v| v.to_vec1::<f32>().unwrap()[0] as usize);
    let run = |ma: &MemoryAttention| {
        ma.forward_layers(&curr, &memory, &curr_pos, &memory_pos, n_ptr, frames)
            .unwrap()
    };
    let (out, layers) = run(&ma);
    assert_eq!(layers.len(), cfg.memory_attention.num_layers);
    for (i, l) in layers.iter().enumerate() {
        let name = format!("memattn.layers.{i}");
        assert_close(&format!("{fixture} {name}"), l, &get(&t, &name), STAGE_TOL);
    }
    assert_close(
        &format!("{fixture} memattn.out"),
        &out,
        &get(&t, "memattn.out"),
        STAGE_TOL,
    );
    let plain = ma
        .forward_with_frames(&curr, &memory, &curr_pos, &memory_pos, n_ptr, frames)
        .unwrap();
    assert_eq!(max_abs(&plain, &out), 0.0);

    // Query chunking only bounds memory: unchunked and odd-sized chunks agree to the last bits.
    for chunk in [None, Some(37)] {
        ma.set_chunk(chunk).unwrap();
        let (o, _) = run(&ma);
        let e = max_abs(&o, &out);
        eprintln!("{fixture} memattn chunk {chunk:?}: max abs vs default {e:.2e}");
        assert!(e <= 1e-5, "chunk {chunk:?} changed the output by {e:.3e}");
    }
    assert!(ma.set_chunk(Some(0)).is_err());
}

#[test]
fn sam2_memory_encoder_matches_official() {
    check_memory_encoder("sam2_test", "sam2.1_test");
}

#[test]
fn sam2_memory_attention_matches_official() {
    check_memory_attention("sam2_test", "sam2.1_test");
}

#[test]
fn edgetam_memory_encoder_matches_official() {
    check_memory_encoder("edgetam_test", "edgetam_test");
}

/// EdgeTAM: RoPEAttentionv2 cross-attention over perceiver latents, and a self-attention whose
/// configured grid (8x8) is recomputed from the 256 queries, as the official code does.
#[test]
fn edgetam_memory_attention_matches_official() {
    check_memory_attention("edgetam_test", "edgetam_test");
}

#[test]
fn memory_attention_rejects_bad_inputs() {
    let t = load_tensors("edgetam_test", "stages.safetensors");
    let cfg = test_config("edgetam_test");
    let vb = pt_var_builder("edgetam_test", "model.pt");
    let ma = MemoryAttention::new(
        &cfg.memory_attention,
        &ModelOptions::default(),
        vb.pp("memory_attention"),
    )
    .unwrap();
    let curr = get(&t, "memattn.curr");
    let curr_pos = get(&t, "memattn.curr_pos");
    let memory = get(&t, "memattn.memory");
    let memory_pos = get(&t, "memattn.memory_pos");
    // v2 cross-attention cannot lay out its keys without the frame count.
    assert!(ma
        .forward(&curr, &memory, &curr_pos, &memory_pos, 6)
        .is_err());
    // More pointer tokens than memory tokens.
    assert!(ma
        .forward_with_frames(&curr, &memory, &curr_pos, &memory_pos, 1000, Some(3))
        .is_err());
    // Frames that do not divide the spatial tokens.
    assert!(ma
        .forward_with_frames(&curr, &memory, &curr_pos, &memory_pos, 6, Some(5))
        .is_err());
}
