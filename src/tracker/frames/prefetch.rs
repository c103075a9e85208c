//! [`PrefetchingFrames`]: a JPEG folder whose next frames are decoded and resized on background
//! threads while the model runs.

use super::folder::VideoFrames;
use super::FrameSource;
use crate::error::{Error, Result};
use crate::image::{normalized_input, resize_to_square};
use candle_core::{Device, Tensor};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
        let (rgb, w, h) = frames.load_rgb(idx)?;
        resize_to_square(&rgb, w, h, image_size)
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
    use crate::image::pil_resize_bicubic_rgb;

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
