//! repvit (in progress)
