//! perceiver (in progress)
