//! Host memory on a long video (issue 18): a session that tracks a few hundred frames keeps its
//! resident set flat once the memory bank has filled. A binary of its own so that no other test
//! allocates in the process while its RSS is read.
//!
//! The SAM 2.1 test variant (random weights) tracks 300 frames of a small synthetic video at its
//! 256 side on the CPU, reading `VmRSS` after every frame. What a frame would leave behind if
//! nothing were dropped is known from the shapes the session stores per frame (the memory
//! features, the low-res mask logits, the object pointer); the growth from just after the bank
//! filled to the end must stay below a quarter of that per frame. The same run under
//! `Retention::Full` (every frame's output kept, as the official predictor does) shows the
//! reading does see such growth: it must grow by at least half of it. No timing is involved.

use candle_core::{DType, Device};
use vosbench::config::ModelConfig;
use vosbench::host::procfs;
use vosbench::sam2::sam2_base::Sam2Base;
use vosbench::tracker::frames::RgbFrames;
use vosbench::tracker::memory_bank::Retention;
use vosbench::tracker::session::{Prompt, Session, SessionOptions};
use vosbench::weights::random::random_var_builder;

const W: usize = 64;
const H: usize = 48;

/// `n` frames of a square drifting across a textured background.
fn frames(n: usize) -> RgbFrames {
    let frames = (0..n)
        .map(|i| {
            let (x0, y0) = (8 + (i * 3) % 32, 8 + (i * 2) % 20);
            let mut f = vec![0u8; W * H * 3];
            for y in 0..H {
                for x in 0..W {
                    let inside = (x0..x0 + 16).contains(&x) && (y0..y0 + 16).contains(&y);
                    let p = (y * W + x) * 3;
                    f[p] = if inside {
                        230
                    } else {
                        ((x * 7 + y * 3) % 64) as u8
                    };
                    f[p + 1] = if inside { 40 } else { ((x * 5 + i) % 64) as u8 };
                    f[p + 2] = if inside { 40 } else { 90 };
                }
            }
            f
        })
        .collect();
    RgbFrames::new(frames, W as u32, H as u32).unwrap()
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Track `n` frames from a box on frame 0 and return the RSS after every frame.
fn rss_per_frame(model: &Sam2Base, n: usize, retention: Retention) -> Vec<u64> {
    let mut s = Session::with_frames(
        model,
        Box::new(frames(n)),
        &Device::Cpu,
        SessionOptions {
            retention,
            ..SessionOptions::default()
        },
    );
    let prompt = Prompt {
        points: vec![],
        bbox: Some([8.0, 8.0, 24.0, 24.0]),
    };
    s.add_prompt(0, 1, &prompt).unwrap();
    let mut rss = Vec::with_capacity(n);
    s.propagate(None, None, false, |r| {
        // Use the result as a caller would, so nothing is optimised away.
        assert_eq!(r.video_res_masks.dims()[2..], [H, W]);
        rss.push(procfs::try_current_rss_bytes()?);
        Ok(())
    })
    .unwrap();
    assert_eq!(rss.len(), n);
    rss
}

#[test]
fn host_memory_stays_flat_after_the_bank_fills() {
    if !procfs::host_memory_supported() {
        eprintln!("host memory is not measured on this platform");
        return;
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/sam2.1_test.json");
    let cfg = ModelConfig::from_file(&p).unwrap();
    let model = Sam2Base::new(&cfg, random_var_builder(0, DType::F32, &Device::Cpu)).unwrap();
    let t = &cfg.tracker;
    // Past this frame nothing more enters the bank: memories are kept within num_maskmem - 1
    // frames, pointers within max_obj_ptrs_in_encoder - 1 (memory_bank.rs, Retention::Window).
    let filled = t.num_maskmem.max(t.max_obj_ptrs_in_encoder) + 4;
    // Bytes one non-conditioning frame stores: its memory features ((S/16)^2 x mem_dim, bf16 when
    // the variant keeps memories in bf16), its low-res logits ((S/4)^2 f32), its object pointer
    // and score. The position encoding is one copy per session.
    let s = cfg.image_size;
    let feat_bytes = if t.memory_features_bf16 { 2 } else { 4 };
    let per_frame = (s / cfg.backbone_stride).pow(2) * cfg.mem_dim() * feat_bytes
        + (s / 4).pow(2) * 4
        + (cfg.hidden_dim() + 1) * 4;
    let window = 20;

    // The run under test first: memory a later run frees stays resident and would hide a leak.
    let n = 300;
    let rss = rss_per_frame(&model, n, Retention::Window);
    let first = median(&rss[filled..filled + window]);
    let last = median(&rss[n - window..]);
    let growth = last as f64 - first as f64;
    let frames_between = (n - window / 2) - (filled + window / 2);
    let bound = (frames_between * per_frame) as f64 / 4.0;

    // Then the control: every output kept. Its growth after the bank filled is what a per-frame leak
    // of that size looks like to this reading.
    let n_full = 160;
    let full = rss_per_frame(&model, n_full, Retention::Full);
    let full_growth = median(&full[n_full - window..])
        .saturating_sub(median(&full[filled..filled + window])) as f64;
    let full_frames = (n_full - window / 2) - (filled + window / 2);
    let full_expected = (full_frames * per_frame) as f64;

    let mib = |b: f64| b / 1048576.0;
    eprintln!(
        "per frame {per_frame} B; Full: {:.2} MiB over {full_frames} frames (a leak of it: {:.2}); \
         Window: {:.2} MiB at frame {filled}, {:.2} MiB at frame {n}, growth {:.2} MiB over \
         {frames_between} frames (bound {:.2}); max {:.2} MiB",
        mib(full_growth),
        mib(full_expected),
        mib(first as f64),
        mib(last as f64),
        mib(growth),
        mib(bound),
        mib(*rss.iter().max().unwrap() as f64),
    );
    assert!(
        full_growth >= full_expected / 2.0,
        "the control kept every frame's output but RSS grew only {:.2} MiB (a leak of it is {:.2} \
         MiB): this reading cannot see a per-frame leak",
        mib(full_growth),
        mib(full_expected)
    );
    assert!(
        growth < bound,
        "RSS grew {:.2} MiB over {frames_between} frames after the bank filled, more than a \
         quarter of what keeping every frame's output costs ({:.2} MiB)",
        mib(growth),
        mib(bound)
    );
}
