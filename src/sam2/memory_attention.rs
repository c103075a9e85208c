//! memory_attention (in progress)
