//! Where a session's frames come from. A folder of JPEGs ([`VideoFrames`], decoded lazily), or
//! frames already decoded to RGB ([`RgbFrames`]: small clips, tests that must isolate JPEG
//! decoding, the benchmark's frame cache). Every source turns a frame into the model input the
//! same way ([`rgb_to_input_tensor`]: Pillow-exact bicubic resize and the official
//! normalisation).

use crate::error::{Error, Result};
use crate::tracker::preprocess::{
    normalized_input, pil_resize_bicubic_rgb, rgb_to_input_tensor, VideoFrames,
};
use candle_core::{Device, Tensor};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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

impl FrameSource for VideoFrames {
    fn len(&self) -> usize {
        VideoFrames::len(self)
    }
    fn size(&self) -> (usize, usize) {
        (self.height() as usize, self.width() as usize)
    }
    fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor> {
        VideoFrames::load_tensor(self, idx, image_size, device)
    }
    fn path(&self, idx: usize) -> Option<&Path> {
        self.paths().get(idx).map(|p| p.as_path())
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

/// How many frames [`PrefetchingFrames`] decodes ahead of the one the model asks for.
pub const PREFETCH_DEPTH: usize = 2;

type Pending = (usize, usize, JoinHandle<Result<Vec<u8>>>);

/// A folder of JPEG frames read the way [`VideoFrames`] reads it, with the host work (JPEG
/// decoding and the Pillow-exact resize to the model's square input) of the next
/// [`PREFETCH_DEPTH`] frames done on background threads while the current frame runs through
/// the model. The direction follows the requests: after frame `t` then `t + 1` it decodes
/// `t + 2, t + 3`; after `t` then `t - 1` it decodes `t - 2, t - 3`.
///
/// Memory bound: at most `PREFETCH_DEPTH + 1` resized frames (`S * S * 3` bytes each) are held at
/// once; the video is never decoded as a whole. Results are bit-identical to [`VideoFrames`]. A
/// frame that fails to decode fails when the model asks for it, with the same error as without
/// prefetching; a prefetched frame that is never asked for is dropped with its error.
pub struct PrefetchingFrames {
    frames: Arc<VideoFrames>,
    state: Mutex<PrefetchState>,
}

#[derive(Default)]
struct PrefetchState {
    last: Option<usize>,
    pending: Vec<Pending>,
}

impl PrefetchingFrames {
    pub fn new(frames: VideoFrames) -> Self {
        Self {
            frames: Arc::new(frames),
            state: Mutex::new(PrefetchState::default()),
        }
    }

    pub fn frames(&self) -> &VideoFrames {
        &self.frames
    }

    fn decode(frames: &VideoFrames, idx: usize, image_size: usize) -> Result<Vec<u8>> {
        let s = u32::try_from(image_size)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| Error::Input(format!("invalid image size {image_size}")))?;
        let (rgb, w, h) = frames.load_rgb(idx)?;
        pil_resize_bicubic_rgb(&rgb, w, h, s, s)
    }

    /// Frame `idx` resized to `image_size`, interleaved RGB; starts decoding the frames after it.
    pub fn load_pixels(&self, idx: usize, image_size: usize) -> Result<Vec<u8>> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| Error::Other("frame prefetch state poisoned".into()))?;
        let step: isize = match st.last {
            Some(l) if idx + 1 == l => -1,
            _ => 1,
        };
        st.last = Some(idx);
        let mut mine = None;
        let mut keep = Vec::new();
        let wanted = |j: usize| {
            (1..=PREFETCH_DEPTH).any(|k| idx.checked_add_signed(step * k as isize) == Some(j))
        };
        for (j, s, h) in st.pending.drain(..) {
            if s != image_size {
                continue;
            }
            if j == idx {
                mine = Some(h);
            } else if wanted(j) {
                keep.push((j, s, h));
            }
            // anything else was a wrong guess: its thread finishes on its own and is dropped
        }
        st.pending = keep;
        for k in 1..=PREFETCH_DEPTH {
            let Some(j) = idx.checked_add_signed(step * k as isize) else {
                break;
            };
            if j >= self.frames.len() || st.pending.iter().any(|p| p.0 == j) {
                continue;
            }
            let frames = Arc::clone(&self.frames);
            let h = std::thread::Builder::new()
                .name(format!("frame-{j}"))
                .spawn(move || Self::decode(&frames, j, image_size))
                .map_err(|e| Error::Other(format!("cannot start a frame decoder thread: {e}")))?;
            st.pending.push((j, image_size, h));
        }
        drop(st);
        match mine {
            Some(h) => h
                .join()
                .map_err(|_| Error::Other(format!("the decoder thread of frame {idx} panicked")))?,
            None => Self::decode(&self.frames, idx, image_size),
        }
    }
}

impl Drop for PrefetchingFrames {
    fn drop(&mut self) {
        if let Ok(st) = self.state.get_mut() {
            for (_, _, h) in st.pending.drain(..) {
                let _ = h.join(); // only waits for work already started; its result is not needed
            }
        }
    }
}

impl FrameSource for PrefetchingFrames {
    fn len(&self) -> usize {
        self.frames.len()
    }
    fn size(&self) -> (usize, usize) {
        (self.frames.height() as usize, self.frames.width() as usize)
    }
    fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor> {
        let px = self.load_pixels(idx, image_size)?;
        normalized_input(&px, image_size, device)
    }
    fn path(&self, idx: usize) -> Option<&Path> {
        self.frames.paths().get(idx).map(|p| p.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::{write_split, SynthOptions};

    fn video(frames: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            videos: 1,
            frames,
            width: 48,
            height: 32,
            seed: 3,
            objects: 1,
        };
        write_split(d.path(), &opts).unwrap();
        let dir = d.path().join("JPEGImages_24fps").join("synth_000");
        (d, dir)
    }

    #[test]
    fn prefetched_frames_equal_direct_reads_in_any_order() {
        let (_d, dir) = video(7);
        let direct = VideoFrames::open(&dir).unwrap();
        let pre = PrefetchingFrames::new(VideoFrames::open(&dir).unwrap());
        let order = [0, 0, 1, 2, 3, 4, 5, 6, 3, 2, 1, 0, 5, 6, 4, 6];
        for &i in &order {
            let (rgb, w, h) = direct.load_rgb(i).unwrap();
            let want = pil_resize_bicubic_rgb(&rgb, w, h, 40, 40).unwrap();
            assert_eq!(pre.load_pixels(i, 40).unwrap(), want, "frame {i}");
            let st = pre.state.lock().unwrap();
            assert!(
                st.pending.len() <= PREFETCH_DEPTH,
                "more than the prefetch depth in flight"
            );
        }
        // a size change never serves a frame resized for the other size
        let (rgb, w, h) = direct.load_rgb(2).unwrap();
        let want = pil_resize_bicubic_rgb(&rgb, w, h, 24, 24).unwrap();
        assert_eq!(pre.load_pixels(2, 24).unwrap(), want);
        let t = pre.load_tensor(3, 24, &Device::Cpu).unwrap();
        let u = direct.load_tensor(3, 24, &Device::Cpu).unwrap();
        let diff = (t - u).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        assert!(
            pre.load_pixels(7, 24).is_err(),
            "frame 7 of 7 must be out of range"
        );
    }

    #[test]
    fn a_corrupt_frame_fails_only_when_asked_for_with_the_direct_error() {
        let (_d, dir) = video(5);
        let bad = dir.join("00003.jpg");
        let bytes = std::fs::read(&bad).unwrap();
        std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
        let direct = VideoFrames::open(&dir).unwrap();
        let pre = PrefetchingFrames::new(VideoFrames::open(&dir).unwrap());
        for i in 0..3 {
            pre.load_pixels(i, 32).unwrap(); // frame 3 is being decoded ahead by now
        }
        let want = direct
            .load_tensor(3, 32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        let got = pre.load_pixels(3, 32).unwrap_err().to_string();
        assert_eq!(got, want);
        assert!(got.contains("00003.jpg"), "{got}");
        pre.load_pixels(4, 32).unwrap();
    }
}
