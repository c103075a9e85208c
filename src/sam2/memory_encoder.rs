//! memory_encoder (in progress)
