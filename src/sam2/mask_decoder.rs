//! mask_decoder (in progress)
