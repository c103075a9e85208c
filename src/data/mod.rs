//! Reading video object segmentation data: SA-V splits and DAVIS-style palette annotations
//! ([`sav`]), mask PNGs and compact mask storage ([`masks`]), the exact distance transform on
//! masks ([`edt`]), prompts derived from the ground truth ([`prompts`]), prompt files for several
//! objects ([`prompt_file`]), overlays of predicted masks on their frames ([`overlay`]), and the
//! synthetic SA-V generator ([`synth`]).

pub mod edt;
pub mod masks;
pub mod overlay;
pub mod prompt_file;
pub mod prompts;
pub mod sav;
pub mod synth;

pub use masks::{LabelMap, Mask, PackedMask};
pub use prompts::{ClickMode, GtPrompt};
pub use sav::{DataIssue, Split, SplitOptions, Video};
