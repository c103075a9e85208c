//! `vosbench info --flops`: the arithmetic of one frame of each variant, counted from the shapes
//! its layers see (`crate::nn::flops`), for FLOPs and TFLOP/s beside a measured frame rate.
//!
//! Each model is built with seeded random weights (FLOPs depend on shapes only) and tracks one
//! object (a box on frame 0) through a synthetic video long enough for the memory bank to fill
//! (`num_maskmem` memories and `max_obj_ptrs_in_encoder` pointers), eagerly: a CUDA graph replay
//! runs no layer code. The last frame is a steady tracked frame, the one a frame rate over a long
//! video is made of; the image encoder is also counted on its own.

use crate::cli::common::synthetic_frame;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::nn::flops::{FlopCount, FlopCounter};
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::frames::{FrameSource, RgbFrames};
use crate::tracker::session::{Prompt, Session, SessionOptions};
use candle_core::{DType, Device};

/// The counted FLOPs of one variant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrameFlops {
    pub model: String,
    pub image_size: usize,
    /// Trunk, neck and the high-res projections of one frame.
    pub image_encoder: FlopCount,
    /// A tracked frame of one object with a full memory bank (image encoder included).
    pub tracked_frame: FlopCount,
    /// Frames of the synthetic video (the last one is `tracked_frame`).
    pub frames: usize,
}

/// Count `cfg`'s frame on `device`.
pub fn count(cfg: &ModelConfig, device: &Device) -> Result<FrameFlops> {
    let vb = crate::weights::random::random_var_builder(0, DType::F32, device);
    let model = Sam2Base::new_with(cfg, &ModelOptions::default(), vb)?;
    let side = cfg.image_size;
    let t = &cfg.tracker;
    let n = t.num_maskmem.max(t.max_obj_ptrs_in_encoder) + 2;
    let frames = RgbFrames::new(
        (0..n)
            .map(|i| synthetic_frame(side, 2 * i, &[(0.5, 0.5)], 1.0 / 6.0))
            .collect(),
        side as u32,
        side as u32,
    )?;
    let img = frames.load_tensor(0, side, device)?;
    let counter = FlopCounter::start();
    model.forward_image(&img)?;
    let image_encoder = counter.take();
    let mut s = Session::with_frames(&model, Box::new(frames), device, SessionOptions::default());
    let q = side as f32 / 4.0;
    let prompt = Prompt {
        points: vec![],
        bbox: Some([q, q, 3.0 * q, 3.0 * q]),
    };
    s.add_prompt(0, 1, &prompt)?;
    counter.take();
    let mut last = FlopCount::default();
    s.propagate(Some(0), None, false, |_r| {
        last = counter.take();
        Ok(())
    })?;
    Ok(FrameFlops {
        model: cfg.name.clone(),
        image_size: side,
        image_encoder,
        tracked_frame: last,
        frames: n,
    })
}

/// The counts as a table, in GFLOP.
pub fn render(rows: &[FrameFlops]) -> String {
    let g = |v: u64| format!("{:.1}", v as f64 / 1e9);
    let mut out = format!(
        "{:<24}{:>6}{:>15}{:>15}{:>12}{:>12}{:>12}\n",
        "model", "size", "image encoder", "tracked frame", "attention", "conv", "matmul"
    );
    for r in rows {
        let f = &r.tracked_frame;
        out.push_str(&format!(
            "{:<24}{:>6}{:>15}{:>15}{:>12}{:>12}{:>12}\n",
            r.model,
            r.image_size,
            g(r.image_encoder.total()),
            g(f.total()),
            g(f.attention),
            g(f.conv),
            g(f.matmul)
        ));
    }
    out.push_str(
        "GFLOP (a multiply-add is 2); tracked frame: one object, memory bank full, image encoder \
         included; elementwise work not counted\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Registry;

    #[test]
    fn a_small_variant_counts_its_frame() -> Result<()> {
        // The Hiera test variant at 256: a frame costs more than its image encoder (memory
        // attention, heads, memory encoder), and attention is counted.
        let cfg = Registry::builtin()?
            .resolve("sam2.1_hiera_tiny")?
            .with_image_size(256)?;
        let f = count(&cfg, &Device::Cpu)?;
        assert_eq!(f.image_size, 256);
        assert!(f.image_encoder.total() > 0);
        assert!(f.tracked_frame.total() > f.image_encoder.total());
        assert!(f.tracked_frame.attention > 0 && f.tracked_frame.conv > 0);
        assert!(render(&[f]).contains("sam2.1_hiera_tiny"));
        Ok(())
    }
}
