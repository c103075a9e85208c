//! rope (in progress)
