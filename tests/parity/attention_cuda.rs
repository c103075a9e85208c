//! The fused CUDA attention kernel (src/cuda/kernels/flash_attn.cu) against the unfused path on
//! the same device, in f32, f32 with TF32, f16 and bf16, at the models' shapes and odd sizes.
//! Needs a CUDA build and device:
//! `cargo test --release --features cudnn --test parity attention_cuda -- --ignored`, or the same
//! check from the CLI: `vosbench probe --check-attention` (results in docs/performance.md).

#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA device; run with --features cuda -- --ignored (results: docs/performance.md)"]
fn fused_attention_matches_the_unfused_path_on_cuda() {
    let dev = vosbench::cuda::open_cuda(0).expect("CUDA device 0");
    let rows = vosbench::cli::probe::attention::check(&dev, false).unwrap();
    assert_eq!(
        rows.len(),
        4 * vosbench::cli::probe::attention::CHECK_SHAPES.len()
    );
    assert!(
        rows.iter().all(|r| r.ok),
        "{}",
        vosbench::cli::probe::attention::render_check(&rows)
    );
}
