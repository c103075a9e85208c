//! Loading vosbench's own CUDA kernels (the `.cu` files under src/cuda/kernels/, compiled by
//! build.rs into fat binaries: SASS for the build's compute capability plus PTX), once per
//! device, and their functions once per name. The cache is process-wide and keyed by device
//! ordinal: a loaded module belongs to the device's context, not to any session.

use candle_core::cuda_backend::cudarc::driver::{sys, CudaFunction, CudaModule, LaunchConfig};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::WrapErr;
use candle_core::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Cache {
    modules: HashMap<(usize, &'static str), Arc<CudaModule>>,
    functions: HashMap<(usize, &'static str, String), CudaFunction>,
}

/// Function `name` of module `module` (fat binary `image`) on `dev`'s context. A dynamic
/// shared-memory size above the default 48 KiB is allowed once, when the function is loaded.
pub fn function(
    dev: &candle_core::CudaDevice,
    module: &'static str,
    image: &'static [u8],
    name: &str,
    smem: usize,
) -> Result<CudaFunction> {
    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
    let ctx = dev.cuda_stream().context().clone();
    let ordinal = ctx.ordinal();
    let mut guard = CACHE
        .lock()
        .map_err(|_| candle_core::Error::Msg("CUDA kernel cache poisoned".into()))?;
    let cache = guard.get_or_insert_with(Cache::default);
    let key = (ordinal, module, name.to_string());
    if let Some(f) = cache.functions.get(&key) {
        return Ok(f.clone());
    }
    let m = match cache.modules.get(&(ordinal, module)) {
        Some(m) => m.clone(),
        None => {
            let m = ctx.load_module(Ptx::from_binary(image.to_vec())).w()?;
            cache.modules.insert((ordinal, module), m.clone());
            m
        }
    };
    let f = m.load_function(name).w()?;
    if smem > 48 * 1024 {
        f.set_attribute(
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem as i32,
        )
        .w()?;
    }
    cache.functions.insert(key, f.clone());
    Ok(f)
}

/// The name suffix of a kernel instantiated per float type (`rope_bf16`, `bias_add_vec_f16`, ...):
/// `f32`, `f16`, or `bf16` for the remaining type. Callers launch only for these three (their
/// `cuda_fwd` refuses any other dtype first).
pub fn type_suffix(dtype: candle_core::DType) -> &'static str {
    match dtype {
        candle_core::DType::F32 => "f32",
        candle_core::DType::F16 => "f16",
        _ => "bf16",
    }
}

/// Launch shape of the grid-stride elementwise kernels: 256 threads a block, enough blocks for
/// `n` elements up to a cap (the kernels loop over the rest).
pub fn grid_1d(n: u32) -> LaunchConfig {
    const THREADS: u32 = 256;
    LaunchConfig {
        grid_dim: (n.div_ceil(THREADS).clamp(1, 65535 * 8), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}
