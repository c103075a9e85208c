//! EdgeTAM in candle: the RepViT trunk and the spatial perceiver; every other module is shared
//! with [`crate::sam2`] and [`crate::nn`].

pub mod perceiver;
pub mod repvit;
