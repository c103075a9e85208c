//! vosbench's elementwise CUDA kernels (bias add with and without its activation, strided copy,
//! LayerNorm2d with and without GELU, q-pool, RoPE) against candle's unfused path on the same
//! device, in f32, f16 and bf16, at the models' shapes and odd sizes. Needs a CUDA build and
//! device: `cargo test --release --features cudnn --test parity kernels_cuda -- --ignored`, or the
//! same check from the CLI: `vosbench probe --check-kernels` (results in docs/performance.md).

#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA device; run with --features cuda -- --ignored (results: docs/performance.md)"]
fn elementwise_kernels_match_the_unfused_path_on_cuda() {
    let dev = vosbench::cuda::open_cuda(0).expect("CUDA device 0");
    let rows = vosbench::cli::probe::kernels::check(&dev, false).unwrap();
    // every kernel has cases in all three dtypes
    for kernel in [
        "bias_add",
        "bias_relu",
        "bias_gelu",
        "strided_copy",
        "ln2d",
        "ln2d_gelu",
        "max_pool",
        "rope",
    ] {
        for dtype in ["f32", "f16", "bf16"] {
            assert!(
                rows.iter().any(|r| r.kernel == kernel && r.dtype == dtype),
                "no {kernel} {dtype} case"
            );
        }
    }
    assert!(
        rows.iter().all(|r| r.ok),
        "{}",
        vosbench::cli::probe::kernels::render_check(&rows)
    );
}
