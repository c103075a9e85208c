//! CUDA device probe and memory control (being written).
