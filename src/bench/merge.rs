//! `vosbench merge`: join the out-dirs of the shards of one run (`bench --shard I/N`, or the
//! per-device processes of `bench --devices`) into one CSV, `summary.json` and table. It refuses,
//! with one line naming the problem, anything that would make the joined table lie: shards that
//! ran with other settings, shards of another partition, a key present twice, rows outside their
//! shard, missing shards and missing keys.

use crate::bench::infer::summary_value;
use crate::bench::plan::{write_json, InferenceConfig, SUMMARY_NAME};
use crate::bench::results::{self, Row, CSV_NAME};
use crate::bench::shard::ShardFile;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a merge wrote.
#[derive(Debug)]
pub struct Merged {
    pub rows: Vec<Row>,
    /// The settings of the run (the first shard's inference config, without its shard and with
    /// the merged out-dir).
    pub config: InferenceConfig,
    pub shards: usize,
    pub csv: PathBuf,
    pub summary: PathBuf,
}

type Key = (String, String, String);

fn label(k: &Key) -> String {
    format!("{}/{}/{}", k.0, k.1, k.2)
}

/// A list of at most `n` labels and how many more there are.
fn some_of(keys: &[String], n: usize) -> String {
    let mut s = keys[..keys.len().min(n)].join(", ");
    if keys.len() > n {
        s.push_str(&format!(" and {} more", keys.len() - n));
    }
    s
}

/// The settings shards of one run must share, by name: what makes their rows comparable.
pub fn settings(cfg: &InferenceConfig) -> Vec<(&'static str, Value)> {
    let o = &cfg.options;
    vec![
        ("split", j(&(&o.split_dir, &o.split_name))),
        (
            "models",
            j(&cfg
                .models
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()),
        ),
        (
            "imgsz",
            j(&cfg
                .models
                .iter()
                .map(|m| m.config.image_size)
                .collect::<Vec<_>>()),
        ),
        ("precision", j(&o.precision)),
        (
            "weights",
            j(&cfg
                .models
                .iter()
                .map(|m| (m.weights.clone(), m.weights_fingerprint.clone()))
                .collect::<Vec<_>>()),
        ),
        ("seed", j(&o.seed)),
        ("click", j(&o.click)),
        ("limit_videos", j(&o.limit_videos)),
        ("limit_objects", j(&o.limit_objects)),
        ("max_clip_frames", j(&o.max_clip_frames)),
        ("warmup_frames", j(&o.warmup_frames)),
        ("mem_budget_bytes", j(&o.mem_budget_bytes)),
        ("budget_figure", j(&cfg.budget_figure)),
        ("tf32", j(&o.tf32)),
        ("memory_fence", j(&o.memory_fence)),
        ("cuda_graph", j(&o.cuda_graph)),
        ("workspace_mb", j(&o.workspace_mb)),
        ("enable_cudnn_tuning", j(&o.enable_cudnn_tuning)),
        ("max_frames_in_mem", j(&o.max_frames_in_mem)),
        ("device model", j(&cfg.device.name)),
    ]
}

/// These types always serialise (plain data); a failure would show as null in a message.
fn j<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One shard's out-dir, read.
struct Part {
    dir: PathBuf,
    file: ShardFile,
    rows: Vec<Row>,
    pids: Vec<u64>,
}

fn read_part(dir: &Path) -> Result<Part> {
    let file = ShardFile::read(dir)?;
    let rows = results::read_rows(&dir.join(CSV_NAME))?;
    let summary = dir.join(SUMMARY_NAME);
    let pids = if summary.exists() {
        let text = std::fs::read_to_string(&summary).map_err(|e| Error::io(&summary, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{} does not parse: {e}", summary.display())))?;
        v["inference_pids"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(Part {
        dir: dir.to_path_buf(),
        file,
        rows,
        pids,
    })
}

/// Check the shards in `dirs` and join them (nothing is written). Rows come in the run order of
/// the work list.
fn join(parts: &[Part]) -> Result<Vec<Row>> {
    let first = &parts[0];
    let d = |p: &Part| p.dir.display().to_string();
    // 1. the same settings everywhere
    let base = settings(&first.file.config);
    for p in &parts[1..] {
        for ((name, a), (_, b)) in base.iter().zip(settings(&p.file.config)) {
            if *a != b {
                return Err(Error::Input(format!(
                    "mixed settings: {name} is {} in {} but {} in {}",
                    compact(a),
                    d(first),
                    compact(&b),
                    d(p)
                )));
            }
        }
    }
    // 2. one shard count
    for p in &parts[1..] {
        if p.file.shard.count != first.file.shard.count {
            return Err(Error::Input(format!(
                "mixed shard counts: {} is shard {} but {} is shard {}",
                d(first),
                first.file.shard,
                d(p),
                p.file.shard
            )));
        }
    }
    // 3. no key twice
    let mut seen: BTreeMap<Key, usize> = BTreeMap::new();
    for (i, p) in parts.iter().enumerate() {
        for r in &p.rows {
            if let Some(&j) = seen.get(&r.key()) {
                let why = if i == j {
                    "twice in"
                } else {
                    "in more than one out-dir:"
                };
                let other = if i == j {
                    String::new()
                } else {
                    format!("{} and ", d(&parts[j]))
                };
                return Err(Error::Input(format!(
                    "key {} is {why} {other}{}: these are results of different runs",
                    label(&r.key()),
                    d(p)
                )));
            }
            seen.insert(r.key(), i);
        }
    }
    // 4. one partition
    for p in &parts[1..] {
        if p.file.work_hash != first.file.work_hash {
            return Err(Error::Input(format!(
                "{} and {} were cut from different work lists (work list {} vs {}): not shards of one run",
                d(first),
                d(p),
                first.file.work_hash,
                p.file.work_hash
            )));
        }
    }
    // 5. each shard once
    let mut by_index: BTreeMap<usize, &Part> = BTreeMap::new();
    for p in parts {
        if let Some(q) = by_index.insert(p.file.shard.index, p) {
            return Err(Error::Input(format!(
                "shard {} is given twice: {} and {}",
                p.file.shard,
                d(q),
                d(p)
            )));
        }
    }
    // 6. rows only of their own shard
    for p in parts {
        let own = p.file.own_keys();
        if let Some(r) = p.rows.iter().find(|r| !own.contains(&r.key())) {
            return Err(Error::Input(format!(
                "{} holds {}, which is not in its shard {}: results of another run",
                d(p),
                label(&r.key()),
                p.file.shard
            )));
        }
    }
    // 7. every shard, every key
    let count = first.file.shard.count;
    let units = &first.file.units;
    let missing_shards: Vec<usize> = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    if !missing_shards.is_empty() {
        let keys: Vec<String> = units
            .iter()
            .filter(|u| missing_shards.contains(&u.shard))
            .map(|u| u.unit.label())
            .collect();
        let names: Vec<String> = missing_shards
            .iter()
            .map(|i| format!("{i}/{count}"))
            .collect();
        return Err(Error::Input(format!(
            "missing shard{} {} ({} keys missing: {})",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            keys.len(),
            some_of(&keys, 5)
        )));
    }
    let missing: Vec<String> = units
        .iter()
        .filter(|u| !seen.contains_key(&u.unit.key()))
        .map(|u| format!("{} (shard {}/{count})", u.unit.label(), u.shard))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Input(format!(
            "{} keys missing: {}; rerun those shards to finish them",
            missing.len(),
            some_of(&missing, 5)
        )));
    }
    // Join in run order.
    let mut all: BTreeMap<Key, Row> = parts
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| (r.key(), r.clone())))
        .collect();
    Ok(units
        .iter()
        .filter_map(|u| all.remove(&u.unit.key()))
        .collect())
}

/// Merge the shards in `dirs` into `out` (CSV and `summary.json`). An existing CSV in `out` is
/// replaced only when every finished row of it is in the merge unchanged (a re-merge after
/// resumed shards); otherwise the merge stops before writing anything.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged> {
    if dirs.is_empty() {
        return Err(Error::Input(
            "merge: give the out-dirs of the shards".into(),
        ));
    }
    let mut uniq = BTreeSet::new();
    for d in dirs {
        let c = d.canonicalize().unwrap_or_else(|_| d.clone());
        if !uniq.insert(c) {
            return Err(Error::Input(format!("{} is given twice", d.display())));
        }
    }
    let parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>>>()?;
    let rows = join(&parts)?;
    let csv = out.join(CSV_NAME);
    let old = results::read_rows(&csv).map_err(|e| match e {
        Error::Input(m) => Error::Input(format!("{m}; merge into another --out")),
        other => other,
    })?;
    // finished rows must survive unchanged; an error row may have been retried since
    if let Some(r) = old.iter().find(|r| r.is_finished() && !rows.contains(r)) {
        return Err(Error::Input(format!(
            "{} holds {}, which this merge would drop or change; merge into another --out",
            csv.display(),
            label(&r.key())
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    results::write_rows(&csv, &rows)?;
    let mut config = parts[0].file.config.clone();
    config.options.shard = None;
    config.options.out_dir = out.to_path_buf();
    let mut pids: Vec<u32> = parts
        .iter()
        .flat_map(|p| p.pids.iter().map(|&x| x as u32))
        .collect();
    pids.dedup();
    let mut value = summary_value(&config, &pids, &rows);
    let count = parts[0].file.shard.count;
    value["shards"] = Value::from(count);
    value["work_hash"] = Value::from(parts[0].file.work_hash.clone());
    let mut ordered: Vec<&Part> = parts.iter().collect();
    ordered.sort_by_key(|p| p.file.shard.index);
    value["merged_from"] = Value::from(
        ordered
            .iter()
            .map(|p| {
                serde_json::json!({
                    "shard": p.file.shard.to_string(),
                    "dir": p.dir.display().to_string(),
                    "device": p.file.config.options.device,
                    "rows": p.rows.len(),
                    "inference_pids": p.pids,
                })
            })
            .collect::<Vec<_>>(),
    );
    let summary = out.join(SUMMARY_NAME);
    write_json(&summary, &value)?;
    Ok(Merged {
        rows,
        config,
        shards: count,
        csv,
        summary,
    })
}
