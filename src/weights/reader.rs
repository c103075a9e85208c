//! Reading checkpoints: original PyTorch files (a torch zip whose state dict sits under "model",
//! or a bare state dict) and safetensors files, told apart by their first bytes, not their names.

use crate::error::{Error, Result};
use crate::weights::spec::FoundTensor;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// On-disk container of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `torch.save` zip archive.
    Torch,
    Safetensors,
}

/// Named tensors, in name order.
pub type NamedTensors = Vec<(String, Tensor)>;

/// A checkpoint read into memory.
#[derive(Debug)]
pub struct Checkpoint {
    pub format: FileFormat,
    /// Tensors in name order.
    pub tensors: Vec<(String, Tensor)>,
    /// Safetensors header metadata (empty for torch files).
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    pub fn found(&self) -> Vec<FoundTensor> {
        found_of(&self.tensors)
    }
}

/// Name, shape and dtype of each tensor.
pub fn found_of(tensors: &[(String, Tensor)]) -> Vec<FoundTensor> {
    tensors
        .iter()
        .map(|(n, t)| FoundTensor {
            name: n.clone(),
            shape: t.dims().to_vec(),
            dtype: t.dtype(),
        })
        .collect()
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::checkpoint(path, msg)
}

/// Open a file that must exist, with a one-line error naming it otherwise.
fn open(path: &Path) -> Result<std::fs::File> {
    if !path.exists() {
        return Err(Error::Input(format!("{}: no such file", path.display())));
    }
    if path.is_dir() {
        return Err(Error::Input(format!(
            "{}: is a directory, not a checkpoint file",
            path.display()
        )));
    }
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// Look at the first bytes: a zip local-file header, or a safetensors header (u64 length then '{').
pub fn detect_format(path: &Path) -> Result<FileFormat> {
    let mut f = open(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = [0u8; 9];
    let n = read_up_to(&mut f, &mut head).map_err(|e| Error::io(path, e))?;
    if n >= 4 && &head[..4] == b"PK\x03\x04" {
        return Ok(FileFormat::Torch);
    }
    if n == 9 && head[8] == b'{' {
        let header_len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        if header_len.saturating_add(8) <= len {
            return Ok(FileFormat::Safetensors);
        }
        return Err(bad(
            path,
            format!("truncated safetensors file (header of {header_len} bytes, file of {len})"),
        ));
    }
    if n == 0 {
        return Err(bad(
            path,
            "empty file, not a PyTorch or safetensors checkpoint",
        ));
    }
    if n >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Err(bad(
            path,
            "a legacy (non-zip) PyTorch pickle; re-save it with a current torch.save, which writes a zip",
        ));
    }
    Err(bad(
        path,
        "not a PyTorch (.pt zip) or safetensors checkpoint",
    ))
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Run candle's pickle reader, turning any panic on malformed pickle data into an error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(bad(path, torch_msg(&e.to_string()))),
        Err(_) => Err(bad(path, "malformed PyTorch pickle data")),
    }
}

/// The zip and pickle errors, phrased for a user.
fn torch_msg(e: &str) -> String {
    let e = e.lines().next().unwrap_or(e).trim();
    let lower = e.to_lowercase();
    if lower.contains("eocd")
        || lower.contains("central directory")
        || lower.contains("invalid zip")
    {
        format!("truncated or corrupt PyTorch zip archive ({e})")
    } else {
        format!("cannot read PyTorch checkpoint: {e}")
    }
}

/// Read a `torch.save` zip: the state dict under "model" (the original SAM 2 / EdgeTAM layout), or
/// the top-level dict when it holds the tensors itself.
pub fn read_torch(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let with_key = guarded(path, || {
        candle_core::pickle::read_pth_tensor_info(path, false, Some("model"))
    });
    let key = match with_key {
        Ok(infos) if !infos.is_empty() => Some("model"),
        Ok(_) => None,
        Err(e) if e.to_string().contains("key model not found") => None,
        Err(e) => return Err(e),
    };
    let mut tensors = guarded(path, || candle_core::pickle::read_all_with_key(path, key))?;
    if tensors.is_empty() {
        return Err(bad(path, "the PyTorch file holds no tensors (expected a state dict, under \"model\" or at top level)"));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// Read every tensor of a safetensors file, with its header metadata.
pub fn read_safetensors(path: &Path) -> Result<(NamedTensors, HashMap<String, String>)> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| bad(path, format!("corrupt safetensors header: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| bad(path, format!("corrupt safetensors file: {e}")))?;
    let mut tensors = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .map_err(|e| bad(path, format!("tensor {name}: {e}")))?;
        tensors.push((name, t));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((tensors, metadata))
}

/// Read a checkpoint of either format.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    match detect_format(path)? {
        FileFormat::Torch => Ok(Checkpoint {
            format: FileFormat::Torch,
            tensors: read_torch(path)?,
            metadata: HashMap::new(),
        }),
        FileFormat::Safetensors => {
            let (tensors, metadata) = read_safetensors(path)?;
            Ok(Checkpoint {
                format: FileFormat::Safetensors,
                tensors,
                metadata,
            })
        }
    }
}

/// Names, shapes and dtypes of a safetensors file without reading its data (header only).
pub fn safetensors_header(path: &Path) -> Result<(Vec<FoundTensor>, HashMap<String, String>)> {
    if detect_format(path)? != FileFormat::Safetensors {
        return Err(bad(path, "not a safetensors file"));
    }
    let mut f = open(path)?;
    let mut len8 = [0u8; 8];
    f.read_exact(&mut len8).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len8) as usize;
    let mut buf = vec![0u8; 8 + n];
    buf[..8].copy_from_slice(&len8);
    f.read_exact(&mut buf[8..])
        .map_err(|e| Error::io(path, e))?;
    // read_metadata checks the header against the buffer length, which here is only the header:
    // parse the JSON header directly instead.
    let header: serde_json::Value = serde_json::from_slice(&buf[8..])
        .map_err(|e| bad(path, format!("corrupt safetensors header: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad(path, "corrupt safetensors header: not an object"))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
    let data_len = file_len - 8 - n;
    let mut found = Vec::new();
    let mut metadata = HashMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            if let Some(m) = v.as_object() {
                for (k, v) in m {
                    if let Some(s) = v.as_str() {
                        metadata.insert(k.clone(), s.to_string());
                    }
                }
            }
            continue;
        }
        let info: safetensors::tensor::TensorInfo =
            serde_json::from_value(v.clone()).map_err(|e| {
                bad(
                    path,
                    format!("corrupt safetensors header entry {name}: {e}"),
                )
            })?;
        if info.data_offsets.1 > data_len || info.data_offsets.0 > info.data_offsets.1 {
            return Err(bad(
                path,
                format!("truncated safetensors file (tensor {name} lies past the end)"),
            ));
        }
        let dtype = st_dtype(info.dtype).ok_or_else(|| {
            bad(
                path,
                format!("tensor {name}: unsupported dtype {:?}", info.dtype),
            )
        })?;
        found.push(FoundTensor {
            name: name.clone(),
            shape: info.shape,
            dtype,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((found, metadata))
}

fn st_dtype(d: safetensors::Dtype) -> Option<candle_core::DType> {
    use candle_core::DType;
    Some(match d {
        safetensors::Dtype::F32 => DType::F32,
        safetensors::Dtype::F16 => DType::F16,
        safetensors::Dtype::BF16 => DType::BF16,
        safetensors::Dtype::F64 => DType::F64,
        safetensors::Dtype::I64 => DType::I64,
        safetensors::Dtype::U8 => DType::U8,
        safetensors::Dtype::U32 => DType::U32,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(bytes: &[u8]) -> Result<FileFormat> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        detect_format(&p)
    }

    #[test]
    fn formats_are_told_apart_by_content() {
        assert_eq!(detect(b"PK\x03\x04rest").unwrap(), FileFormat::Torch);
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        assert_eq!(detect(&st).unwrap(), FileFormat::Safetensors);
        let cut = 100u64
            .to_le_bytes()
            .iter()
            .copied()
            .chain(*b"{}")
            .collect::<Vec<u8>>();
        assert!(detect(&cut)
            .unwrap_err()
            .to_string()
            .contains("truncated safetensors file"));
        assert!(detect(b"").unwrap_err().to_string().contains("empty file"));
        assert!(detect(b"\x80\x02legacy")
            .unwrap_err()
            .to_string()
            .contains("legacy (non-zip) PyTorch pickle"));
        assert!(detect(b"hello world")
            .unwrap_err()
            .to_string()
            .contains("not a PyTorch (.pt zip) or safetensors"));
        let missing = detect_format(Path::new("/nonexistent/x.pt")).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().ends_with("no such file"));
    }
}
