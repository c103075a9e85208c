//! The backbone features a session keeps: the most recently encoded frame (as the official
//! predictor caches it, for repeated interactions with one frame) and the frames that hold
//! prompts a propagation has not visited yet.
//!
//! Prompting a frame encodes it; the propagation that follows needs the same features again
//! (the memory encoder of the prompted outputs in preflight, the other objects' tracking when it
//! reaches the frame). Keeping ("pinning") them until the propagation has visited the frame
//! means one trunk + neck pass per frame for every object of the session, whatever the order of
//! the prompts: an object mask-prompted on frame 6 before the propagation starts at frame 0 costs
//! no second pass of frame 6. The bound: one entry per prompted frame not yet visited, plus the
//! most recent frame.

use crate::sam2::sam2_base::FrameFeatures;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct FeatureCache {
    recent: Option<(usize, FrameFeatures)>,
    pinned: BTreeMap<usize, FrameFeatures>,
    passes: usize,
}

impl FeatureCache {
    /// The features of `frame` if they are kept; `pin` keeps them until [`Self::visited`].
    pub fn get(&mut self, frame: usize, pin: bool) -> Option<FrameFeatures> {
        if let Some(f) = self.pinned.get(&frame) {
            return Some(f.clone());
        }
        let feats = match &self.recent {
            Some((f, feats)) if *f == frame => feats.clone(),
            _ => return None,
        };
        if pin {
            self.pinned.insert(frame, feats.clone());
        }
        Some(feats)
    }

    /// Store freshly encoded features of `frame` (one image-encoder pass), pinned when asked.
    pub fn insert(&mut self, frame: usize, feats: FrameFeatures, pin: bool) {
        self.passes += 1;
        if pin {
            self.pinned.insert(frame, feats.clone());
        }
        self.recent = Some((frame, feats));
    }

    /// A propagation has run `frame` for every object: its features are no longer pinned (they
    /// stay as the most recent frame's).
    pub fn visited(&mut self, frame: usize) {
        if let Some(feats) = self.pinned.remove(&frame) {
            self.recent = Some((frame, feats));
        }
    }

    /// Image-encoder passes so far (each frame encoded once per stay in the cache).
    pub fn passes(&self) -> usize {
        self.passes
    }

    /// Frames whose features are pinned.
    pub fn pinned_frames(&self) -> Vec<usize> {
        self.pinned.keys().copied().collect()
    }
}
