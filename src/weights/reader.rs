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
///
/// candle's reader trusts the file: a pickle string length or a tensor shape is allocated
/// before it is read. So the archive is checked first ([`check_torch_pickles`],
/// [`check_torch_storages`]): every allocation that follows is bounded by the file's size.
pub fn read_torch(path: &Path) -> Result<Vec<(String, Tensor)>> {
    check_torch_pickles(path)?;
    let with_key = guarded(path, || {
        candle_core::pickle::read_pth_tensor_info(path, false, Some("model"))
    });
    let key = match with_key {
        Ok(infos) if !infos.is_empty() => {
            check_torch_storages(path, &infos)?;
            Some("model")
        }
        Ok(_) => None,
        Err(e) if e.to_string().contains("key model not found") => None,
        Err(e) => return Err(e),
    };
    if key.is_none() {
        let infos = guarded(path, || {
            candle_core::pickle::read_pth_tensor_info(path, false, None)
        })?;
        check_torch_storages(path, &infos)?;
    }
    let mut tensors = guarded(path, || candle_core::pickle::read_all_with_key(path, key))?;
    if tensors.is_empty() {
        return Err(bad(path, "the PyTorch file holds no tensors (expected a state dict, under \"model\" or at top level)"));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

fn open_zip(path: &Path) -> Result<(zip::ZipArchive<std::io::BufReader<std::fs::File>>, u64)> {
    let f = open(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let z = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| bad(path, torch_msg(&e.to_string())))?;
    Ok((z, len))
}

/// Walk every `data.pkl` of a torch zip the way candle's pickle reader will, refusing what
/// would make it allocate more than the file can justify: a string length past the end of the
/// pickle, or memo copies (`BINGET` clones the object) that grow the object tree beyond a
/// bound linear in the pickle's size (a few bytes of pickle can otherwise double it again and
/// again).
pub fn check_torch_pickles(path: &Path) -> Result<()> {
    let (mut z, file_len) = open_zip(path)?;
    for i in 0..z.len() {
        let mut entry = z
            .by_index(i)
            .map_err(|e| bad(path, torch_msg(&e.to_string())))?;
        if !entry.name().is_ok_and(|n| n.ends_with("data.pkl")) {
            continue;
        }
        let limit = entry
            .size()
            .min(crate::data::masks::max_inflated_bytes(file_len));
        let mut data = Vec::new();
        (&mut entry)
            .take(limit)
            .read_to_end(&mut data)
            .map_err(|e| bad(path, format!("cannot read the pickle: {e}")))?;
        scan_pickle(&data).map_err(|m| bad(path, format!("malformed PyTorch pickle data: {m}")))?;
    }
    Ok(())
}

/// The pickle walk of [`check_torch_pickles`]: the opcodes candle reads, with each stack item
/// replaced by a weight (objects plus string bytes it holds), and the running total of what
/// candle allocates. Stops at STOP or an opcode candle does not know (candle fails there
/// itself).
pub fn scan_pickle(data: &[u8]) -> std::result::Result<(), String> {
    // candle's objects are tens of bytes each; valid checkpoints stay far below this
    let budget = (data.len() as u64)
        .saturating_mul(16)
        .saturating_add(1 << 16);
    const MARK: u64 = u64::MAX;
    let mut stack: Vec<u64> = Vec::new();
    let mut memo: HashMap<u32, u64> = HashMap::new();
    let mut total: u64 = 0;
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| format!("an argument of {n} bytes at offset {pos} runs past the end"))?;
        let s = &data[*pos..end];
        *pos = end;
        Ok(s)
    };
    let pop = |stack: &mut Vec<u64>| -> std::result::Result<u64, String> {
        match stack.pop() {
            Some(MARK) | None => Err("stack underflow".into()),
            Some(w) => Ok(w),
        }
    };
    let pop_mark = |stack: &mut Vec<u64>| -> std::result::Result<u64, String> {
        let mut sum = 0u64;
        loop {
            match stack.pop() {
                None => return Err("no mark on the stack".into()),
                Some(MARK) => return Ok(sum),
                Some(w) => sum = sum.saturating_add(w),
            }
        }
    };
    while pos < data.len() {
        let op = data[pos];
        pos += 1;
        // the weight pushed by this opcode, if any
        let pushed: Option<u64> = match op {
            0x80 => {
                take(&mut pos, 1)?;
                None
            }
            b'c' => {
                for _ in 0..2 {
                    let rest = &data[pos..];
                    let n = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |i| i + 1);
                    take(&mut pos, n)?;
                }
                Some(1)
            }
            // BININT1/BININT (K, J), memo get (h, j) and memo put (q, r): a 1-byte
            // argument for K, h, q and a 4-byte one for J, j, r
            b'K' | b'h' | b'q' | b'J' | b'j' | b'r' => {
                let a = if matches!(op, b'K' | b'h' | b'q') {
                    take(&mut pos, 1)?[0] as u32
                } else {
                    let b = take(&mut pos, 4)?;
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                };
                match op {
                    b'K' | b'J' => Some(1),
                    b'h' | b'j' => Some(*memo.get(&a).ok_or("memo get of an unset slot")?),
                    _ => {
                        let w = *stack
                            .last()
                            .filter(|&&w| w != MARK)
                            .ok_or("memo put of an empty stack")?;
                        memo.insert(a, w);
                        total = total.saturating_add(w);
                        None
                    }
                }
            }
            b'M' => {
                take(&mut pos, 2)?;
                Some(1)
            }
            b'G' => {
                take(&mut pos, 8)?;
                Some(1)
            }
            b'X' => {
                let b = take(&mut pos, 4)?;
                let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                take(&mut pos, n)?;
                Some(1 + n as u64)
            }
            0x8a => {
                let n = take(&mut pos, 1)?[0] as usize;
                take(&mut pos, n)?;
                Some(1)
            }
            b'Q' => Some(pop(&mut stack)?.saturating_add(1)),
            b't' => Some(pop_mark(&mut stack)?.saturating_add(1)),
            0x85..=0x87 => {
                let mut w = 1u64;
                for _ in 0..(op - 0x84) {
                    w = w.saturating_add(pop(&mut stack)?);
                }
                Some(w)
            }
            b'R' | b'b' | 0x81 => {
                let a = pop(&mut stack)?;
                let b = pop(&mut stack)?;
                Some(a.saturating_add(b).saturating_add(1))
            }
            b'a' | b's' | b'e' | b'u' => {
                let added = match op {
                    b'a' => pop(&mut stack)?,
                    b's' => pop(&mut stack)?.saturating_add(pop(&mut stack)?),
                    _ => pop_mark(&mut stack)?,
                };
                let top = stack
                    .last_mut()
                    .filter(|w| **w != MARK)
                    .ok_or("append to an empty stack")?;
                *top = top.saturating_add(added);
                None
            }
            0x88 | 0x89 | b'N' | b'}' | b'd' | b')' | b']' => Some(1),
            b'(' => {
                stack.push(MARK);
                None
            }
            // STOP, or an opcode candle does not read (it fails there itself)
            _ => return Ok(()),
        };
        if let Some(w) = pushed {
            stack.push(w);
            // what candle allocates anew: a copy for a memo get, else the new object itself (a
            // container takes its items over, they were counted when pushed)
            let new = match op {
                b'h' | b'j' | b'X' => w,
                _ => 1,
            };
            total = total.saturating_add(new);
        }
        if total > budget {
            return Err(format!(
                "its objects grow past {budget} units for {} bytes of pickle",
                data.len()
            ));
        }
    }
    Ok(())
}

/// Check that the bytes each tensor reads lie inside its storage entry, and that the entry is
/// no larger than the file can hold, before candle allocates the tensor from its shape.
pub fn check_torch_storages(path: &Path, infos: &[candle_core::pickle::TensorInfo]) -> Result<()> {
    let (mut z, file_len) = open_zip(path)?;
    for ti in infos {
        let need = ti
            .layout
            .start_offset()
            .checked_add(
                ti.layout
                    .shape()
                    .dims()
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .unwrap_or(usize::MAX),
            )
            .and_then(|n| n.checked_mul(ti.dtype.size_in_bytes()));
        let entry = z.by_name(&ti.path).map_err(|e| {
            bad(
                path,
                format!("tensor {}: storage {}: {e}", ti.name, ti.path),
            )
        })?;
        let have = entry
            .size()
            .min(crate::data::masks::max_inflated_bytes(
                entry.compressed_size(),
            ))
            .min(crate::data::masks::max_inflated_bytes(file_len));
        if need.is_none_or(|n| n as u64 > have) {
            return Err(bad(
                path,
                format!(
                    "tensor {} of shape {:?} needs more bytes than its storage {} holds ({})",
                    ti.name,
                    ti.layout.shape().dims(),
                    ti.path,
                    entry.size()
                ),
            ));
        }
    }
    Ok(())
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
