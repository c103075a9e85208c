//! CUDA builds (`--features cuda`) compile the kernels under src/cuda/kernels/ with nvcc into a
//! fat binary holding machine code (SASS) for the target compute capability plus PTX for newer
//! GPUs, so the driver needs no just-in-time compilation when the kernels first load (it took
//! seconds on the first run on a fresh machine with PTX alone). The target comes from
//! `CUDA_COMPUTE_CAP` (cuda-build sets 90 for H100/H200; 87 for Jetson Orin) or the local GPU;
//! nvcc from `NVCC`, `PATH` or `CUDA_HOME`, found by cudaforge as candle's kernels are.
//! CPU builds need no CUDA toolkit and compile nothing.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/cuda/kernels");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    #[cfg(feature = "cuda")]
    cuda_kernels();
}

#[cfg(feature = "cuda")]
fn cuda_kernels() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = cudaforge::CudaToolkit::detect()
        .unwrap_or_else(|e| panic!("the cuda feature needs nvcc: {e}"))
        .nvcc_path;
    let cc = cudaforge::detect_compute_cap()
        .unwrap_or_else(|e| panic!("set CUDA_COMPUTE_CAP (e.g. 90, or 87 for Jetson Orin): {e}"))
        .base();
    for name in [
        "flash_attn",
        "bias_add",
        "strided_copy",
        "softmax",
        "rope",
        "layer_norm2d",
        "max_pool",
    ] {
        let src = format!("src/cuda/kernels/{name}.cu");
        let dst = out.join(format!("{name}.fatbin"));
        let status = std::process::Command::new(&nvcc)
            .args(["-fatbin", "-O3", "-std=c++17", "--expt-relaxed-constexpr"])
            .arg(format!("-gencode=arch=compute_{cc},code=sm_{cc}"))
            .arg(format!("-gencode=arch=compute_{cc},code=compute_{cc}"))
            .arg("-o")
            .arg(&dst)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
        assert!(status.success(), "nvcc failed on {src} ({status})");
    }
}
