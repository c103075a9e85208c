//! Where a session's frames come from: a folder of JPEGs ([`VideoFrames`], decoded lazily, or
//! [`PrefetchingFrames`], decoded ahead on background threads), or frames already decoded to RGB
//! ([`RgbFrames`]: small clips, tests that must isolate JPEG decoding, the benchmark's frame
//! cache). Every source turns a frame into the model input the same way
//! ([`rgb_to_input_tensor`]: Pillow-exact bicubic resize and the official normalisation).

mod folder;
mod prefetch;

pub use folder::{list_jpeg_frames, VideoFrames};
pub use prefetch::{PrefetchingFrames, PREFETCH_DEPTH};

use crate::error::{Error, Result};
use crate::image::rgb_to_input_tensor;
use candle_core::{Device, Tensor};
use std::path::Path;

/// A video's frames, as a session asks for them.
pub trait FrameSource {
    /// Number of frames.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (height, width) of the video in pixels.
    fn size(&self) -> (usize, usize);
    /// Frame `idx` as the model input: [1, 3, S, S] f32 on `device`.
    fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor>;
    /// The file a frame was read from, when there is one (for overlays).
    fn path(&self, _idx: usize) -> Option<&Path> {
        None
    }
}

/// Frames held as decoded interleaved RGB (all of the same size).
#[derive(Debug, Clone)]
pub struct RgbFrames {
    frames: Vec<Vec<u8>>,
    width: u32,
    height: u32,
}

impl RgbFrames {
    pub fn new(frames: Vec<Vec<u8>>, width: u32, height: u32) -> Result<Self> {
        if frames.is_empty() {
            return Err(Error::Input("a video needs at least one frame".into()));
        }
        let want = width as usize * height as usize * 3;
        if let Some(i) = frames.iter().position(|f| f.len() != want) {
            return Err(Error::Input(format!(
                "frame {i} has {} bytes, a {width}x{height} RGB frame has {want}",
                frames[i].len()
            )));
        }
        Ok(Self {
            frames,
            width,
            height,
        })
    }
}

impl FrameSource for RgbFrames {
    fn len(&self) -> usize {
        self.frames.len()
    }
    fn size(&self) -> (usize, usize) {
        (self.height as usize, self.width as usize)
    }
    fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor> {
        let f = self.frames.get(idx).ok_or_else(|| {
            Error::Input(format!(
                "frame index {idx} out of range ({} frames)",
                self.frames.len()
            ))
        })?;
        rgb_to_input_tensor(f, self.width, self.height, image_size, device)
    }
}
