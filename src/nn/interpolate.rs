//! interpolate (in progress)
