//! prompt_encoder (in progress)
