//! Reading what the reference scripts wrote (`tests/reference/`, names in
//! `tests/reference/FIXTURES.md`): fixture tensors, the original-format checkpoint a fixture was
//! made with and the weight overrides a video fixture may carry, and the frames as Pillow decoded
//! them. The parity runner and the tests load through these, so a checkpoint is read one way.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::tracker::frames::RgbFrames;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

/// Every tensor of a fixture's safetensors file, on the host. A missing or unreadable file is an
/// input error naming it.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::Input(format!(
            "missing fixture file {}",
            path.display()
        )));
    }
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::Input(format!("cannot read fixture {}: {e}", path.display())))
}

/// A stage fixture folder's `stages.safetensors` onto the host.
pub fn load_stages(dir: &Path) -> Result<HashMap<String, Tensor>> {
    read_tensors(&dir.join("stages.safetensors"))
}

/// The tensors of an original-format PyTorch checkpoint (`{"model": state_dict}`, e.g. a
/// fixture's `model.pt`), on the host in their stored dtypes.
pub fn read_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::pickle::read_all_with_key(path, Some("model")).map_err(|e| {
        Error::checkpoint(path, format!("cannot read as a PyTorch checkpoint: {e}"))
    })?;
    if tensors.is_empty() {
        return Err(Error::checkpoint(path, "no tensors under \"model\""));
    }
    Ok(tensors.into_iter().collect())
}

/// Put `overrides` (read from the file `source`, e.g. a video fixture's
/// `weight_overrides.safetensors`) in place of the tensors of the same name in `weights` (read
/// from `weights_path`). Every override must name an existing tensor of the same shape.
pub fn apply_overrides(
    weights: &mut HashMap<String, Tensor>,
    overrides: HashMap<String, Tensor>,
    source: &Path,
    weights_path: &Path,
) -> Result<()> {
    for (k, v) in overrides {
        match weights.get(&k) {
            Some(old) if old.dims() == v.dims() => {
                weights.insert(k, v);
            }
            Some(old) => {
                return Err(Error::Input(format!(
                    "{}: override {k} has shape {:?}, the weights have {:?}",
                    source.display(),
                    v.dims(),
                    old.dims()
                )))
            }
            None => {
                return Err(Error::Input(format!(
                    "{}: override {k} is not a tensor of {}",
                    source.display(),
                    weights_path.display()
                )))
            }
        }
    }
    Ok(())
}

/// Weights as a VarBuilder in f32 on `device`: an original-format PyTorch checkpoint
/// ([`read_checkpoint`]) or a vosbench-converted `.safetensors` (validated against `cfg` first),
/// with the tensors of the safetensors file `overrides`, when given, in place of theirs
/// ([`apply_overrides`]).
pub fn load_weights(
    path: &Path,
    overrides: Option<&Path>,
    cfg: &ModelConfig,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    if !path.is_file() {
        return Err(Error::Input(format!("missing weights {}", path.display())));
    }
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let mut map = match (is_safetensors, overrides) {
        // nothing to replace: map the converted file instead of reading it
        (true, None) => return crate::weights::load_var_builder(path, cfg, DType::F32, device),
        (true, Some(_)) => {
            crate::weights::inspect_converted(path, cfg)?;
            candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|e| Error::checkpoint(path, format!("cannot read: {e}")))?
        }
        (false, _) => read_checkpoint(path)?,
    };
    if let Some(o) = overrides {
        apply_overrides(&mut map, read_tensors(o)?, o, path)?;
    }
    Ok(VarBuilder::from_tensors(map, DType::F32, device))
}

/// The frames of a `pillow_rgb.safetensors` (tensor `rgb`, u8 `[N, H, W, 3]`: the video as
/// Pillow decoded it, which isolates JPEG decoding from the rest of a comparison).
pub fn pillow_frames(path: &Path) -> Result<RgbFrames> {
    let t = read_tensors(path)?;
    let rgb = t
        .get("rgb")
        .ok_or_else(|| Error::Input(format!("{} has no 'rgb' tensor", path.display())))?;
    let (n, h, w, c) = rgb
        .dims4()
        .map_err(|_| Error::Input(format!("{}: rgb must be [N, H, W, 3]", path.display())))?;
    if c != 3 || rgb.dtype() != DType::U8 {
        return Err(Error::Input(format!(
            "{}: rgb must be u8 [N, H, W, 3], is {:?} {:?}",
            path.display(),
            rgb.dtype(),
            rgb.dims()
        )));
    }
    let frames = (0..n)
        .map(|i| Ok(rgb.get(i)?.flatten_all()?.to_vec1::<u8>()?))
        .collect::<Result<Vec<_>>>()?;
    RgbFrames::new(frames, w as u32, h as u32)
}
