//! Parity with the official PyTorch code, one module per part of the model, on the fixtures the
//! scripts under tests/reference/ wrote (names in tests/reference/FIXTURES.md): the image encoder,
//! the prompt encoder and mask decoder, the memory encoder and memory attention, SAM2Base's glue,
//! EdgeTAM's parts, whole-video tracking, half precision, the `vosbench parity` runner itself and
//! (CUDA builds) the fused attention kernel. One test binary: `cargo test --test parity [MODULE]`.

#[path = "../common/mod.rs"]
mod common;

mod attention_cuda;
mod edgetam;
mod image_encoder;
mod kernels_cuda;
mod memory;
mod multi_object;
mod precision;
mod runner;
mod sam2_base;
mod sam_heads;
mod tracking;
mod tracking_edgetam;
