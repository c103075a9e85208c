//! The prompt steps of several objects ([`crate::data::prompt_file`]) against one video: read
//! and checked all together before anything runs (frame range, mask size and content, points
//! and boxes inside the frame), then applied to a session in order.

use crate::data::masks::{read_mask_png, Mask};
use crate::data::prompt_file::{ObjectPrompts, StepKind};
use crate::error::{Error, Result};
use crate::tracker::session::{FrameResult, Prompt, Session};

/// What a step prompts with, ready for the session.
#[derive(Debug, Clone, PartialEq)]
pub enum StepPrompt {
    /// `add_new_mask`
    Mask(Mask),
    /// `add_new_points_or_box`
    Clicks(Prompt),
}

/// One step of one object, checked against the video.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedStep {
    pub obj_id: u32,
    pub frame: usize,
    pub prompt: StepPrompt,
}

/// Every step of `objects` in the order they apply (objects in order, each object's steps in
/// order), checked against a video of `num_frames` frames of `width` x `height` pixels: a frame
/// outside the video, a mask PNG that cannot be read, has another size or is empty, a point or
/// box outside the frame are one-line input errors naming the object.
pub fn load_steps(
    objects: &[ObjectPrompts],
    num_frames: usize,
    width: usize,
    height: usize,
) -> Result<Vec<LoadedStep>> {
    let mut out = Vec::new();
    let inside = |x: f32, y: f32| x >= 0.0 && y >= 0.0 && x <= width as f32 && y <= height as f32;
    for o in objects {
        for s in &o.steps {
            let id = o.id;
            if s.frame >= num_frames {
                return Err(Error::Input(format!(
                    "object {id}: prompt frame {} is outside the video ({num_frames} frames)",
                    s.frame
                )));
            }
            let prompt = match &s.kind {
                StepKind::Mask(path) => {
                    let m = read_mask_png(path)?;
                    if (m.width, m.height) != (width, height) {
                        return Err(Error::Input(format!(
                            "object {id}: mask {} is {}x{}, the video is {width}x{height}",
                            path.display(),
                            m.width,
                            m.height
                        )));
                    }
                    if m.is_empty() {
                        return Err(Error::Input(format!(
                            "object {id}: mask {} is empty",
                            path.display()
                        )));
                    }
                    StepPrompt::Mask(m)
                }
                StepKind::Clicks { points, bbox } => {
                    if let Some(&(x, y, _)) = points.iter().find(|p| !inside(p.0, p.1)) {
                        return Err(Error::Input(format!(
                            "object {id}: point ({x}, {y}) is outside the {width}x{height} frame"
                        )));
                    }
                    if let Some([x0, y0, x1, y1]) = *bbox {
                        if !inside(x0, y0) || !inside(x1, y1) || x1 < x0 || y1 < y0 {
                            return Err(Error::Input(format!(
                                "object {id}: box [{x0}, {y0}, {x1}, {y1}] is not a box inside \
                                 the {width}x{height} frame"
                            )));
                        }
                    }
                    StepPrompt::Clicks(Prompt {
                        points: points.clone(),
                        bbox: *bbox,
                    })
                }
            };
            out.push(LoadedStep {
                obj_id: id,
                frame: s.frame,
                prompt,
            });
        }
    }
    Ok(out)
}

/// Apply one step (`add_new_mask` or `add_new_points_or_box`); the masks of every object on the
/// step's frame.
pub fn apply_step(session: &mut Session, step: &LoadedStep) -> Result<FrameResult> {
    match &step.prompt {
        StepPrompt::Mask(m) => session.add_mask(step.frame, step.obj_id, m),
        StepPrompt::Clicks(p) => session.add_prompt(step.frame, step.obj_id, p),
    }
}
