//! image_encoder (in progress)
