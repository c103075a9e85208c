//! What the program reads about the machine it runs on, below every other layer: memory and
//! process figures from Linux procfs ([`procfs`]) and free disk space ([`disk`]). It imports
//! nothing of the crate but the error type, so the device probe (`cuda::probe`) and the benchmark
//! can both use it.

pub mod disk;
pub mod jetson;
pub mod procfs;
