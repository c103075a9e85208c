//! Validated conversion of an original (or transformers-layout) checkpoint to safetensors.
//!
//! Order of work: read the whole input, map HF names to original ones, validate every key, shape
//! and dtype against the variant's spec, and only then write, to a temporary file in the output's
//! folder that is re-checked and renamed into place. Any failure leaves no file behind.

use crate::config::{ModelConfig, Registry};
use crate::error::{Error, Result};
use crate::weights::hf_layout::{detect_layout, hf_to_original, is_edgetam, KeyLayout};
use crate::weights::reader::{
    found_of, read_checkpoint, safetensors_header, FileFormat, NamedTensors,
};
use crate::weights::spec::{expected_tensors, param_count, validate, FoundTensor, TensorSpec};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Version of the converted-file layout, written as `vosbench_format` in the header metadata.
pub const FORMAT_VERSION: &str = "1";

/// Metadata keys of converted files.
pub const META_FORMAT: &str = "vosbench_format";
pub const META_VARIANT: &str = "variant";
pub const META_SOURCE: &str = "source";
pub const META_DTYPE: &str = "dtype";

/// Float storage types a converted file may use.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::Input(format!(
            "unknown dtype '{other}' (use f32, f16 or bf16)"
        ))),
    }
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F64 => "f64",
        DType::I64 => "i64",
        DType::U8 => "u8",
        DType::U32 => "u32",
        _ => "other",
    }
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub variant: String,
    pub input_format: FileFormat,
    pub layout: KeyLayout,
    pub tensors: usize,
    pub params: u64,
    /// Float storage type written (the input's own when it is uniform, else `--dtype` is required).
    pub dtype: DType,
    pub output: PathBuf,
    pub bytes: u64,
}

/// Bring tensors read from a file to the original key layout of `cfg` (renaming only; tensors
/// are shared, not copied).
pub fn to_original_layout(
    path: &Path,
    raw: &[(String, Tensor)],
    layout: KeyLayout,
    cfg: &ModelConfig,
) -> Result<Vec<(String, Tensor)>> {
    match layout {
        KeyLayout::Original => Ok(raw.to_vec()),
        KeyLayout::Hf => {
            hf_to_original(path, raw.to_vec(), &expected_tensors(cfg)?, is_edgetam(cfg))
        }
    }
}

/// Read a checkpoint and bring it to the original key layout of `cfg`, without validating.
pub fn load_state(
    input: &Path,
    cfg: &ModelConfig,
) -> Result<(NamedTensors, FileFormat, KeyLayout)> {
    let ck = read_checkpoint(input)?;
    let layout = detect_layout(ck.tensors.iter().map(|(n, _)| n.as_str()));
    let tensors = to_original_layout(input, &ck.tensors, layout, cfg)?;
    Ok((tensors, ck.format, layout))
}

/// If the file's tensors match another registered variant exactly, its name.
pub fn guess_variant(
    path: &Path,
    raw: &[(String, Tensor)],
    layout: KeyLayout,
    registry: &Registry,
    except: &str,
) -> Option<String> {
    registry
        .models()
        .iter()
        .filter(|m| m.name != except)
        .find(|m| {
            let ok = || -> Result<bool> {
                let mapped = to_original_layout(path, raw, layout, m)?;
                Ok(validate(&expected_tensors(m)?, &found_of(&mapped)).is_ok())
            };
            ok().unwrap_or(false)
        })
        .map(|m| m.name.clone())
}

/// Validate tensors against the variant, with a one-line error naming the first problems.
pub fn check_against(
    path: &Path,
    cfg: &ModelConfig,
    specs: &[TensorSpec],
    found: &[FoundTensor],
) -> Result<()> {
    let v = validate(specs, found);
    if v.is_ok() {
        return Ok(());
    }
    Err(Error::checkpoint(
        path,
        format!("does not match variant {}: {}", cfg.name, v.summary()),
    ))
}

/// [`check_against`] for a file being converted, with hints: the variant the file does match, or
/// that a transformers file is an image-only model without the video modules.
fn check_input(
    path: &Path,
    cfg: &ModelConfig,
    specs: &[TensorSpec],
    raw: &[(String, Tensor)],
    layout: KeyLayout,
    mapped: &[(String, Tensor)],
    registry: Option<&Registry>,
) -> Result<()> {
    let found = found_of(mapped);
    let v = validate(specs, &found);
    if v.is_ok() {
        return Ok(());
    }
    let mut msg = format!("does not match variant {}: {}", cfg.name, v.summary());
    if let Some(guess) = registry.and_then(|r| guess_variant(path, raw, layout, r, &cfg.name)) {
        msg.push_str(&format!(" (this looks like {guess})"));
    } else if layout == KeyLayout::Hf
        && v.missing
            .iter()
            .any(|s| s.name.starts_with("memory_attention."))
        && !found
            .iter()
            .any(|f| f.name.starts_with("memory_attention."))
    {
        msg.push_str(
            " (an image-only transformers checkpoint: video tracking needs the memory modules of the video model; use the original .pt)",
        );
    }
    Err(Error::checkpoint(path, msg))
}

/// Convert `input` to a validated safetensors file at `output` for variant `cfg`. `dtype` casts
/// the float tensors; without it they keep the checkpoint's own (uniform) float type. Integer
/// tensors (BatchNorm counters) always keep theirs. `registry` lets a mismatch name the variant
/// the file does match.
pub fn convert(
    input: &Path,
    output: &Path,
    cfg: &ModelConfig,
    dtype: Option<DType>,
    registry: Option<&Registry>,
) -> Result<ConvertReport> {
    let specs = expected_tensors(cfg)?;
    let ck = read_checkpoint(input)?;
    let input_format = ck.format;
    let layout = detect_layout(ck.tensors.iter().map(|(n, _)| n.as_str()));
    let tensors = to_original_layout(input, &ck.tensors, layout, cfg)?;
    check_input(input, cfg, &specs, &ck.tensors, layout, &tensors, registry)?;
    drop(ck);

    // Spec order, so the file reads like the module tree.
    let mut by_name: HashMap<String, Tensor> = tensors.into_iter().collect();
    let mut ordered = Vec::with_capacity(specs.len());
    for s in &specs {
        let t = by_name
            .remove(&s.name)
            .ok_or_else(|| Error::checkpoint(input, format!("missing key {}", s.name)))?;
        ordered.push((s.name.clone(), t));
    }

    let float_types: Vec<DType> = {
        let mut v: Vec<DType> = ordered
            .iter()
            .map(|(_, t)| t.dtype())
            .filter(|d| is_float(*d))
            .collect();
        v.sort_by_key(|d| dtype_name(*d));
        v.dedup();
        v
    };
    let target = match dtype {
        Some(d) => d,
        None => match float_types.as_slice() {
            [one] => *one,
            _ => {
                return Err(Error::checkpoint(
                    input,
                    format!(
                        "float tensors use several types ({}); pass --dtype to choose one",
                        float_types
                            .iter()
                            .map(|d| dtype_name(*d))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        },
    };
    let mut cast = Vec::with_capacity(ordered.len());
    for (n, t) in ordered {
        let t = if is_float(t.dtype()) && t.dtype() != target {
            t.to_dtype(target)
                .map_err(|e| Error::checkpoint(input, format!("cannot cast {n}: {e}")))?
        } else {
            t
        };
        cast.push((n, t));
    }

    let mut meta = HashMap::new();
    meta.insert(META_FORMAT.to_string(), FORMAT_VERSION.to_string());
    meta.insert(META_VARIANT.to_string(), cfg.name.clone());
    meta.insert(META_SOURCE.to_string(), layout.as_str().to_string());
    meta.insert(META_DTYPE.to_string(), dtype_name(target).to_string());

    write_atomic(output, &cast, meta, |tmp| {
        // Re-read the header of what was written: the file must itself pass validation.
        let (found, m) = safetensors_header(tmp)?;
        check_against(tmp, cfg, &specs, &found)?;
        if m.get(META_VARIANT) != Some(&cfg.name) {
            return Err(Error::checkpoint(tmp, "metadata was not written"));
        }
        Ok(())
    })?;
    let bytes = std::fs::metadata(output)
        .map_err(|e| Error::io(output, e))?
        .len();
    Ok(ConvertReport {
        variant: cfg.name.clone(),
        input_format,
        layout,
        tensors: cast.len(),
        params: param_count(&specs),
        dtype: target,
        output: output.to_path_buf(),
        bytes,
    })
}

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write a safetensors file through a temporary file in the same folder, run `verify` on it, then
/// rename it into place. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
    verify: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: not a file path", path.display())))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut guard = TempGuard(Some(tmp.clone()));
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .map_err(|e| Error::checkpoint(path, format!("cannot write: {e}")))?;
    #[cfg(unix)]
    {
        // The serializer writes through a private (0600) temporary file; a weights file is
        // ordinary data, readable like the checkpoint it came from.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(&tmp, e))?;
    }
    verify(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    guard.0 = None;
    Ok(())
}
