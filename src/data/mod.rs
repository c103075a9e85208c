//! Reading video object segmentation data: SA-V splits and DAVIS-style palette annotations
//! ([`sav`]), mask PNGs and compact mask storage ([`masks`]), prompts derived from the ground
//! truth ([`prompts`]), and the synthetic SA-V generator ([`synth`]).

pub mod masks;
pub mod synth;
