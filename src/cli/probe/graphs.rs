//! `vosbench probe --check-graphs`: the CUDA graphs of a session (the image encoder's trunk and
//! the step of a tracked frame, `crate::cuda::graph`) against the same session run eagerly.
//!
//! For each model (seeded random weights at the variant's input size), dtype and object count,
//! one session tracks a synthetic video with graphs off and one with graphs on; every frame's
//! low-res logits of every object are compared. The video is long enough for the memory bank to
//! fill (`num_maskmem` frames and `max_obj_ptrs_in_encoder` pointers), so the step's graph is
//! warmed, captured and replayed for several frames. A graph replays the eager kernels on the
//! same data, so the logits should be bit-identical; a case passes when both graphs were captured
//! and the logits agree within `TOLERANCE`.

use crate::cli::common::synthetic_frame;
use crate::config::Registry;
use crate::error::{Error, Result};
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::frames::RgbFrames;
use crate::tracker::session::{Prompt, Session, SessionOptions};
use candle_core::{DType, Device};

/// Largest relative L2 difference of the logits a case may have.
pub const TOLERANCE: f64 = 1e-6;

/// One case of [`check`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphCheckRow {
    pub model: String,
    /// f32 or bf16
    pub dtype: String,
    pub objects: usize,
    pub frames: usize,
    /// The trunk's and the step's graph after the graphed session.
    pub trunk_graph: String,
    pub step_graph: String,
    /// Over every frame and object: relative L2 and largest absolute difference of the low-res
    /// logits, graphed against eager.
    pub rel_l2: f64,
    pub max_abs: f64,
    pub bit_exact: bool,
    pub ok: bool,
}

/// Centres of the video's three discs (fractions of the side), one per object.
const DISCS: [(f32, f32); 3] = [(0.3, 0.3), (0.65, 0.4), (0.45, 0.7)];

/// The prompts of up to three objects on frame 0: boxes around the discs, one as a click.
fn prompts(side: usize, objects: usize) -> Vec<(u32, Prompt)> {
    let s = side as f32;
    let boxed = |cx: f32, cy: f32| Prompt {
        points: vec![],
        bbox: Some([
            (cx - 0.12) * s,
            (cy - 0.12) * s,
            (cx + 0.12) * s,
            (cy + 0.12) * s,
        ]),
    };
    let all = [
        (1, boxed(DISCS[0].0, DISCS[0].1)),
        (
            2,
            Prompt {
                points: vec![(DISCS[1].0 * s, DISCS[1].1 * s, 1)],
                bbox: None,
            },
        ),
        (3, boxed(DISCS[2].0, DISCS[2].1)),
    ];
    all.into_iter().take(objects).collect()
}

/// Every frame's low-res logits of every object, flattened, and the graphs' states after the
/// session.
fn track(
    model: &Sam2Base,
    frames: &RgbFrames,
    objects: usize,
    graphed: bool,
    device: &Device,
) -> Result<(Vec<f32>, String, String)> {
    let opts = SessionOptions {
        cuda_graph: graphed,
        ..SessionOptions::default()
    };
    let mut s = Session::with_frames(model, Box::new(frames.clone()), device, opts);
    let side = model.image_size();
    for (id, p) in prompts(side, objects) {
        s.add_prompt(0, id, &p)?;
    }
    let mut logits = Vec::new();
    s.propagate(Some(0), None, false, |r| {
        logits.extend(
            r.low_res_masks
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        Ok(())
    })?;
    Ok((
        logits,
        model.image_encoder.trunk_graph_status(),
        s.step_graph_status(),
    ))
}

/// Every case for `models` on `device` (a CUDA device): f32 and bf16, one and three objects.
pub fn check(device: &Device, models: &[String]) -> Result<Vec<GraphCheckRow>> {
    let reg = Registry::builtin()?;
    let mut rows = Vec::new();
    for name in models {
        let cfg = reg.resolve(name)?;
        let t = &cfg.tracker;
        // the bank full after max(num_maskmem, max pointers) frames; then a warm-up, a capture
        // and replays
        let n_frames = t.num_maskmem.max(t.max_obj_ptrs_in_encoder) + 8;
        let side = cfg.image_size;
        let frames = RgbFrames::new(
            (0..n_frames)
                .map(|i| synthetic_frame(side, 3 * i, &DISCS, 0.1))
                .collect(),
            side as u32,
            side as u32,
        )?;
        for (dtype, dname) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
            let vb = crate::weights::random::random_var_builder(0, dtype, device);
            let model = Sam2Base::new_with(&cfg, &ModelOptions::default(), vb)?;
            for objects in [1, 3] {
                let (eager, _, _) = track(&model, &frames, objects, false, device)?;
                let (graphed, trunk, step) = track(&model, &frames, objects, true, device)?;
                if eager.len() != graphed.len() {
                    return Err(Error::Other(format!(
                        "graph check {name} {dname}: {} logits eager, {} graphed",
                        eager.len(),
                        graphed.len()
                    )));
                }
                let (mut se, mut sr, mut max_abs) = (0f64, 0f64, 0f64);
                let mut bit_exact = true;
                for (a, b) in eager.iter().zip(&graphed) {
                    let d = (*a as f64 - *b as f64).abs();
                    bit_exact &= a.to_bits() == b.to_bits();
                    se += d * d;
                    sr += (*a as f64) * (*a as f64);
                    max_abs = max_abs.max(d);
                }
                let rel_l2 = if sr > 0.0 {
                    (se / sr).sqrt()
                } else {
                    se.sqrt()
                };
                let captured = trunk == "captured" && step == "captured";
                rows.push(GraphCheckRow {
                    model: name.clone(),
                    dtype: dname.into(),
                    objects,
                    frames: n_frames,
                    ok: captured && rel_l2 <= TOLERANCE && rel_l2.is_finite(),
                    trunk_graph: trunk,
                    step_graph: step,
                    rel_l2,
                    max_abs,
                    bit_exact,
                });
            }
        }
    }
    Ok(rows)
}

/// The cases as a table.
pub fn render_check(rows: &[GraphCheckRow]) -> String {
    let mut out = format!(
        "{:<24}{:<6}{:>4}{:>7}  {:<10}{:<10}{:>10}{:>10}  {}\n",
        "model", "dtype", "obj", "frames", "trunk", "step", "rel L2", "max abs", "result"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24}{:<6}{:>4}{:>7}  {:<10}{:<10}{:>10.1e}{:>10.1e}  {}\n",
            r.model,
            r.dtype,
            r.objects,
            r.frames,
            r.trunk_graph,
            r.step_graph,
            r.rel_l2,
            r.max_abs,
            match (r.ok, r.bit_exact) {
                (true, true) => "OK (bit-exact)",
                (true, false) => "OK",
                (false, _) => "FAILED",
            }
        ));
    }
    out
}
