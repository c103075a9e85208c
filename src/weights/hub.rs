//! Where checkpoints live under the weights folder, their status, and hub download.
//!
//! Layout of the weights folder (default `weights/`):
//! - `<variant>.safetensors`: the converted, validated checkpoint every other command loads;
//! - `<hub_file>` (e.g. `sam2.1_hiera_tiny.pt`): an original checkpoint placed by hand;
//! - `.hf-cache/`: hf-hub's download cache.

use crate::config::{ModelConfig, Registry};
use crate::error::{Error, Result};
use crate::weights::convert::{convert, ConvertReport};
use crate::weights::load::{inspect_converted, ConvertedInfo};
use candle_core::DType;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The converted checkpoint of a variant.
pub fn converted_path(dir: &Path, cfg: &ModelConfig) -> PathBuf {
    dir.join(format!("{}.safetensors", cfg.name))
}

/// Where an original checkpoint placed by hand is looked for.
pub fn original_path(dir: &Path, cfg: &ModelConfig) -> PathBuf {
    match &cfg.checkpoint.hub_file {
        Some(f) => dir.join(f),
        None => dir.join(format!("{}.pt", cfg.name)),
    }
}

/// hf-hub's cache folder inside the weights folder.
pub fn cache_dir(dir: &Path) -> PathBuf {
    dir.join(".hf-cache")
}

/// The state of a variant's checkpoint in a weights folder.
#[derive(Debug, Clone)]
pub enum Status {
    /// Neither a converted nor an original checkpoint.
    Missing,
    /// Only the original `.pt` (placed by hand or downloaded); `vosbench fetch` converts it.
    OriginalOnly(PathBuf),
    /// A converted file that passes validation.
    Converted(PathBuf, ConvertedInfo),
    /// A converted file that does not (the reason, one line).
    Invalid(PathBuf, String),
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Missing => "missing",
            Status::OriginalOnly(_) => "original only",
            Status::Converted(..) => "converted and valid",
            Status::Invalid(..) => "invalid",
        }
    }
}

/// The original file, placed by hand or already in the hub cache (no network).
fn local_original(dir: &Path, cfg: &ModelConfig) -> Option<PathBuf> {
    let p = original_path(dir, cfg);
    if p.is_file() {
        return Some(p);
    }
    let (repo, file) = (
        cfg.checkpoint.hub_repo.as_ref()?,
        cfg.checkpoint.hub_file.as_ref()?,
    );
    let cache = hf_hub::Cache::new(cache_dir(dir));
    cache.model(repo.clone()).get(file)
}

/// Check a variant's checkpoint in `dir` (headers only: fast even for the large model).
pub fn status(dir: &Path, cfg: &ModelConfig) -> Status {
    let conv = converted_path(dir, cfg);
    if conv.exists() {
        return match inspect_converted(&conv, cfg) {
            Ok(info) => Status::Converted(conv, info),
            Err(e) => Status::Invalid(conv, e.to_string()),
        };
    }
    match local_original(dir, cfg) {
        Some(p) => Status::OriginalOnly(p),
        None => Status::Missing,
    }
}

/// What `fetch` had to do.
#[derive(Debug)]
pub enum FetchOutcome {
    /// A valid converted file was already there: nothing downloaded or written.
    AlreadyPresent(PathBuf),
    /// Converted from an original file found locally (placed by hand or cached).
    ConvertedLocal(ConvertReport),
    /// Downloaded from the hub, then converted.
    Downloaded(ConvertReport),
}

/// The public address a user can download the original checkpoint from by hand (the direct URL of
/// the variant file, else the hub's own address of the file, whatever HF_ENDPOINT says).
pub fn manual_url(cfg: &ModelConfig) -> Option<String> {
    if let Some(u) = &cfg.checkpoint.url {
        return Some(u.clone());
    }
    let (repo, file) = (
        cfg.checkpoint.hub_repo.as_ref()?,
        cfg.checkpoint.hub_file.as_ref()?,
    );
    let endpoint =
        std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_string());
    Some(format!("{endpoint}/{repo}/resolve/main/{file}"))
}

/// Make sure `dir` holds a valid converted checkpoint of `cfg`: use what is there, else convert a
/// local original, else download the original from the hub and convert it.
pub fn fetch(
    cfg: &ModelConfig,
    dir: &Path,
    dtype: Option<DType>,
    registry: Option<&Registry>,
) -> Result<FetchOutcome> {
    let conv = converted_path(dir, cfg);
    if conv.exists() {
        match inspect_converted(&conv, cfg) {
            Ok(info)
                if dtype.is_none_or(|d| crate::weights::convert::dtype_name(d) == info.dtype) =>
            {
                return Ok(FetchOutcome::AlreadyPresent(conv))
            }
            // Invalid or of another dtype: convert again below (the rename replaces it).
            _ => {}
        }
    }
    if let Some(orig) = local_original(dir, cfg) {
        let r = convert(&orig, &conv, cfg, dtype, registry)?;
        return Ok(FetchOutcome::ConvertedLocal(r));
    }
    let (repo, file) = match (&cfg.checkpoint.hub_repo, &cfg.checkpoint.hub_file) {
        (Some(r), Some(f)) => (r.clone(), f.clone()),
        _ => {
            return Err(Error::Input(format!(
                "variant {} has no hub source; convert a checkpoint with `vosbench convert` and place it at {}",
                cfg.name,
                conv.display()
            )))
        }
    };
    // A folder this call creates is removed again if the download fails (an offline run must
    // not leave an empty weights folder behind).
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let undo = |e: Error| {
        if created {
            let _ = std::fs::remove_dir_all(dir);
        }
        e
    };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(cache_dir(dir))
        .with_progress(std::io::stderr().is_terminal())
        .build()
        .map_err(|e| undo(Error::Input(format!("cannot set up the hub client: {e}"))))?;
    let downloaded = api.model(repo.clone()).get(&file).map_err(|e| {
        let url = manual_url(cfg).unwrap_or_default();
        Error::Input(format!(
            "cannot download {file} from hub repository {repo} ({}); download it by hand from {url} and place it at {}, then run `vosbench fetch {}{}` again",
            first_line(&e.to_string()),
            original_path(dir, cfg).display(),
            cfg.name,
            if dir == Path::new("weights") { String::new() } else { format!(" --weights-dir {}", dir.display()) }
        ))
    }).map_err(undo)?;
    let r = convert(&downloaded, &conv, cfg, dtype, registry)?;
    Ok(FetchOutcome::Downloaded(r))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
