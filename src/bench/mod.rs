//! The two-phase benchmark (being written).
