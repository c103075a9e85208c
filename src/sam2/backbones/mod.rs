//! The image encoder and its trunks, as `sam2/modeling/backbones/` lays them out: `hieradet`
//! (SAM 2.1's Hiera), `repvit` (EdgeTAM's RepViT, which the official code reaches through timm in
//! `timm.py`) and `image_encoder` (the FPN neck and the encoder around a trunk).

pub mod hieradet;
pub mod image_encoder;
pub mod repvit;
