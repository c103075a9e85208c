//! Opening a converted checkpoint for inference: the header is checked against the variant
//! (format version, variant name, every key and shape) before any tensor is touched, then the
//! file is memory-mapped.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::convert::{
    check_against, FORMAT_VERSION, META_DTYPE, META_FORMAT, META_SOURCE, META_VARIANT,
};
use crate::weights::reader::safetensors_header;
use crate::weights::spec::expected_tensors;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

/// What the header of a valid converted file says.
#[derive(Debug, Clone)]
pub struct ConvertedInfo {
    pub variant: String,
    pub source: String,
    pub dtype: String,
    pub tensors: usize,
    pub metadata: HashMap<String, String>,
}

/// Check a converted file against `cfg` from its header alone.
pub fn inspect_converted(path: &Path, cfg: &ModelConfig) -> Result<ConvertedInfo> {
    let (found, meta) = safetensors_header(path)?;
    match meta.get(META_FORMAT) {
        None => {
            return Err(Error::checkpoint(
                path,
                "not a vosbench-converted file (no vosbench_format metadata); run `vosbench convert` on it first",
            ))
        }
        Some(v) if v != FORMAT_VERSION => {
            return Err(Error::checkpoint(
                path,
                format!("converted with format version {v}, this build reads version {FORMAT_VERSION}; convert it again"),
            ))
        }
        Some(_) => {}
    }
    let variant = meta.get(META_VARIANT).cloned().unwrap_or_default();
    if variant != cfg.name {
        return Err(Error::checkpoint(
            path,
            format!("was converted for variant '{variant}', not '{}'", cfg.name),
        ));
    }
    let specs = expected_tensors(cfg)?;
    check_against(path, cfg, &specs, &found)?;
    Ok(ConvertedInfo {
        variant,
        source: meta.get(META_SOURCE).cloned().unwrap_or_default(),
        dtype: meta.get(META_DTYPE).cloned().unwrap_or_default(),
        tensors: found.len(),
        metadata: meta,
    })
}

/// A VarBuilder over a validated, memory-mapped converted checkpoint; tensors are cast to `dtype`
/// on `device` as they are fetched.
pub fn load_var_builder(
    path: &Path,
    cfg: &ModelConfig,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    inspect_converted(path, cfg)?;
    // SAFETY: the file is mapped read-only; like every mmap-based loader this assumes nobody
    // truncates it while it is in use.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device) }
        .map_err(|e| Error::checkpoint(path, format!("cannot map: {e}")))?;
    Ok(vb)
}
