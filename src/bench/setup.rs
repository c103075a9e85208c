//! Phase A: probe, scan, prompts, frame cache, warm-up measurements and the budget plan. It
//! writes `metadata.json` and `inference_config.json` into `--preprocessed-dir`, then its
//! process exits (the launcher starts phase B in fresh processes, [`crate::bench::launch`]).

use crate::bench::cache::{self, CachedFrames};
use crate::bench::mem::{self, BudgetFigure, HostSampler};
use crate::bench::model::{build_model, conv_options, prompt_object};
use crate::bench::plan::{
    file_fingerprint, read_json, write_json, BenchOptions, InferenceConfig, Metadata, ModelPlan,
    ModelTag, ObjectMeta, PromptKind, VideoMeta, WeightsSource, CONFIG_NAME, METADATA_NAME,
};
use crate::bench::progress::bar;
use crate::bench::results::{Results, CSV_NAME};
use crate::config::{ModelConfig, Precision};
use crate::cuda::tuning::{self, ConvTuner, Source};
use crate::data::prompts::object_prompt;
use crate::data::sav::{MaskKind, Split, SplitOptions};
use crate::error::{Error, Result};
use crate::exec::EnvSwitches;
use crate::host::disk::free_disk_bytes;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::{Session, SessionOptions};
use crate::weights::hub::{converted_path, original_path};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Run the prompt frame and two tracked frames once so that every convolution shape of the model
/// meets the algorithm search (image encoder, memory encoder; the memory attention on the second
/// frame). Nothing is measured here; the search's scratch buffers are freed afterwards.
fn tuning_pass(
    model: &Sam2Base,
    frames: CachedFrames,
    device: &Device,
    session_opts: SessionOptions,
    o: &ObjectMeta,
    kind: PromptKind,
) -> Result<()> {
    let mut session = Session::with_frames(model, Box::new(frames), device, session_opts);
    prompt_object(&mut session, 1, o, kind)?;
    session.propagate(Some(o.prompt_frame), Some(2), false, |_r| Ok(()))?;
    device.synchronize()?;
    Ok(())
}

/// Scan the split and derive the prompts.
pub fn scan_split(opts: &BenchOptions) -> Result<Metadata> {
    let split = Split::open(
        &opts.split_dir,
        &SplitOptions {
            split_name: opts.split_name.clone(),
            check_frames: false,
        },
    )?;
    let mut issues = split.issues.clone();
    let mut order: Vec<&crate::data::sav::Video> = split.videos.iter().collect();
    let shuffle_seed = opts.shuffle_videos.then(|| {
        opts.shuffle_seed.unwrap_or_else(|| {
            // No --seed: a seed of its own, recorded in metadata.json so the order can be
            // repeated with --seed.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ u64::from(std::process::id())
        })
    });
    if let Some(seed) = shuffle_seed {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    let mut videos = Vec::new();
    for v in order {
        if opts.limit_videos > 0 && videos.len() >= opts.limit_videos {
            break;
        }
        let mut objects = Vec::new();
        for o in &v.objects {
            if opts.limit_objects > 0 && objects.len() >= opts.limit_objects {
                break;
            }
            let Some(p) = object_prompt(v, o, opts.click, &mut issues) else {
                continue;
            };
            objects.push(ObjectMeta {
                id: o.id.clone(),
                label: match o.kind {
                    MaskKind::Binary => None,
                    MaskKind::Label(l) => Some(l),
                },
                annotations: o
                    .annotations
                    .iter()
                    .map(|a| (a.frame, a.path.clone()))
                    .collect(),
                prompt_frame: p.frame,
                point: p.point,
                bbox: p.bbox,
                prompt_area: p.area,
            });
        }
        if objects.is_empty() {
            continue;
        }
        videos.push(VideoMeta {
            name: v.name.clone(),
            frames: v.frames.clone(),
            width: v.width,
            height: v.height,
            objects,
            caches: Vec::new(),
        });
    }
    if videos.is_empty() {
        return Err(Error::Input(format!(
            "no object in {} has a usable prompt (a non-empty annotation){}",
            opts.split_dir.display(),
            if issues.is_empty() {
                String::new()
            } else {
                format!("; first problem: {}", issues[0])
            }
        )));
    }
    Ok(Metadata {
        split_dir: opts.split_dir.clone(),
        layout: format!("{:?}", split.layout),
        video_order: videos.iter().map(|v| v.name.clone()).collect(),
        videos,
        issues: issues.iter().map(|i| i.to_string()).collect(),
        shuffle_seed,
    })
}

/// The nearest folder of `path` (itself or an ancestor) that exists: where a check of free disk
/// space or write permission can look before anything is created.
fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    loop {
        if p.exists() {
            return p;
        }
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
}

/// Whether files can be created under `dir` (or where it would be created), tried with a probe
/// file that is removed at once; nothing else is created.
fn check_writable(dir: &Path, flag: &str) -> Result<()> {
    let at = nearest_existing(dir);
    if !at.is_dir() {
        return Err(Error::Input(format!(
            "{flag} {}: {} is not a folder",
            dir.display(),
            at.display()
        )));
    }
    let probe = at.join(format!(".vosbench-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::Input(format!(
            "{flag} {} is not writable ({}: {e})",
            dir.display(),
            at.display()
        ))),
    }
}

/// The checks a run can make before it writes anything (into `--out-dir`, `--preprocessed-dir`
/// or a demo split): both folders writable, and a budget above what the process already uses.
/// (The results CSV is checked by [`run_setup`] before it creates anything.)
pub fn preflight(opts: &BenchOptions) -> Result<()> {
    check_writable(&opts.out_dir, "--out-dir")?;
    check_writable(&opts.preprocessed_dir, "--preprocessed-dir")?;
    if let Some(b) = opts.mem_budget_bytes {
        let baseline = mem::current_rss_bytes();
        if b.bytes() <= baseline {
            return Err(Error::Budget(format!(
                "--mem-budget-mb {b} is below what the process already uses ({:.1} MiB) before any model is loaded",
                baseline as f64 / 1048576.0
            )));
        }
    }
    Ok(())
}

/// The frame caches of a setup: every video at every inference side, with the ones still to
/// write and their size.
struct CachePlan {
    todo: Vec<(usize, usize, PathBuf)>,
    need_bytes: u64,
}

/// List the cache file of every video at every side in `meta` (`caches`), keeping valid caches
/// of other sides that an earlier setup listed (several sides coexist), and say which files must
/// be written. Reads only.
fn plan_caches(opts: &BenchOptions, meta: &mut Metadata, sides: &[usize]) -> CachePlan {
    let previous: Option<Metadata> = read_json(&opts.preprocessed_dir.join(METADATA_NAME)).ok();
    let valid = |p: &Path, v: &VideoMeta, s: usize| {
        cache::read_header(p).is_ok_and(|h| {
            h.frames == v.frames.len()
                && h.side == s
                && (h.orig_width, h.orig_height) == (v.width, v.height)
        })
    };
    let mut plan = CachePlan {
        todo: Vec::new(),
        need_bytes: 0,
    };
    for (vi, v) in meta.videos.iter_mut().enumerate() {
        let mut caches = Vec::new();
        for &s in sides {
            let p = cache::cache_path(&opts.preprocessed_dir, &v.name, s);
            if !valid(&p, v, s) {
                plan.need_bytes += 64 + (v.frames.len() * s * s * 3) as u64;
                plan.todo.push((vi, s, p.clone()));
            }
            caches.push((s, p));
        }
        let earlier = previous.as_ref().and_then(|m| {
            m.videos
                .iter()
                .find(|o| o.name == v.name && o.frames == v.frames)
        });
        for (s, p) in earlier.map(|o| o.caches.clone()).unwrap_or_default() {
            if !sides.contains(&s) && valid(&p, v, s) {
                caches.push((s, p));
            }
        }
        caches.sort_by_key(|c| c.0);
        v.caches = caches;
    }
    plan
}

/// Check that the caches still to write fit the free disk (before anything is created).
fn check_cache_space(opts: &BenchOptions, plan: &CachePlan) -> Result<()> {
    let dir = opts.preprocessed_dir.join("frames");
    if plan.need_bytes == 0 {
        return Ok(());
    }
    match free_disk_bytes(&nearest_existing(&dir)) {
        Some(free) if free < plan.need_bytes + (64 << 20) => Err(Error::Input(format!(
            "the frame cache needs {:.1} MiB but {} has {:.1} MiB free (use --preprocessed-dir elsewhere, a smaller --imgsz or --limit-videos)",
            plan.need_bytes as f64 / 1048576.0,
            dir.display(),
            free as f64 / 1048576.0
        ))),
        Some(_) => Ok(()),
        None => {
            if !opts.quiet {
                eprintln!("warning: cannot read the free disk space of {}; writing {:.1} MiB of frame cache without checking", dir.display(), plan.need_bytes as f64 / 1048576.0);
            }
            Ok(())
        }
    }
}

/// Write the planned caches. Temp files (`*.vfc.tmp`) a killed earlier setup left behind are
/// removed first; a failed write removes its own. A video whose frames cannot be decoded (or
/// differ in size) is a split problem: it is left out and the others go on. Any other failure (a
/// full disk) stops the setup.
fn write_caches(opts: &BenchOptions, meta: &mut Metadata, plan: CachePlan) -> Result<()> {
    let dir = opts.preprocessed_dir.join("frames");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    cache::remove_stale_temps(&dir);
    let total: u64 = plan
        .todo
        .iter()
        .map(|(vi, _, _)| meta.videos[*vi].frames.len() as u64)
        .sum();
    let b = bar(opts.quiet, total, "frame cache");
    let mut failed: Vec<usize> = Vec::new();
    for (vi, s, p) in plan.todo {
        if failed.contains(&vi) {
            continue;
        }
        let v = &meta.videos[vi];
        match cache::write_cache(&v.frames, s, &p, || b.inc(1)) {
            Ok(_) => {}
            Err(Error::Input(msg)) => {
                meta.issues
                    .push(format!("video {}: {msg}; video left out", v.name));
                failed.push(vi);
            }
            Err(e) => return Err(e),
        }
    }
    b.finish_and_clear();
    failed.sort_unstable();
    for vi in failed.into_iter().rev() {
        meta.videos.remove(vi);
    }
    if meta.videos.is_empty() {
        return Err(Error::Input(format!(
            "no video of {} could be cached (first problem: {})",
            opts.split_dir.display(),
            meta.issues.last().map(String::as_str).unwrap_or("-")
        )));
    }
    Ok(())
}

/// Print the split problems from `from` on (one line each, unless --quiet); with --strict the
/// first one is an error.
fn report_problems(opts: &BenchOptions, meta: &Metadata, from: usize) -> Result<()> {
    let new = &meta.issues[from.min(meta.issues.len())..];
    if !opts.quiet {
        for i in new {
            eprintln!("split problem: {i}");
        }
    }
    match meta.issues.first() {
        Some(first) if opts.strict && !new.is_empty() => Err(Error::Input(format!(
            "--strict: {} in {} (first: {first})",
            plural(meta.issues.len(), "split problem"),
            opts.split_dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Find or fetch the weights of a model.
pub(crate) fn resolve_weights(opts: &BenchOptions, tag: &ModelTag) -> Result<WeightsSource> {
    if opts.random_weights {
        return Ok(WeightsSource::Random {
            seed: opts.seed,
            reason: "--random-weights".into(),
        });
    }
    let cfg = &tag.config;
    let conv = converted_path(&opts.weights_dir, cfg);
    if conv.exists() && crate::weights::inspect_converted(&conv, cfg).is_ok() {
        return Ok(WeightsSource::Checkpoint { path: conv });
    }
    match crate::weights::hub::fetch(cfg, &opts.weights_dir, None, None) {
        Ok(_) => Ok(WeightsSource::Checkpoint { path: conv }),
        Err(e) if opts.demo => {
            eprintln!(
                "\n!!! WARNING: no weights for {} ({e}).\n!!! The demo falls back to SEEDED RANDOM WEIGHTS: speed and memory are real, ACCURACY IS MEANINGLESS.\n",
                cfg.name
            );
            Ok(WeightsSource::Random {
                seed: opts.seed,
                reason: "demo fallback, hub unreachable: accuracy meaningless".into(),
            })
        }
        Err(e) => Err(Error::Input(format!(
            "no weights for {}: place a converted checkpoint at {} (or the original at {}), or pass --random-weights to measure speed and memory only ({e})",
            cfg.name,
            conv.display(),
            original_path(&opts.weights_dir, cfg).display()
        ))),
    }
}

/// Bytes of one stored memory-bank entry (see [`ModelPlan::bank_entry_bytes`]).
/// The bytes of the model's weights as the model holds them: every tensor of the variant's state
/// dict (parameters and buffers, from the key spec) at the run's dtype. Exact and the same on
/// every device, where a resident-memory difference reads zero for weights that live on a GPU
/// or were mapped before the measurement.
fn weights_tensor_bytes(cfg: &ModelConfig, dtype: DType) -> Result<u64> {
    let specs = crate::weights::expected_tensors(cfg)?;
    let numel: u64 = specs.iter().map(|t| t.numel() as u64).sum();
    Ok(numel * dtype.size_in_bytes() as u64)
}

fn bank_entry_bytes(cfg: &ModelConfig, dtype: DType) -> u64 {
    let e = (cfg.image_size / cfg.backbone_stride) as u64;
    let feat_dtype = if cfg.tracker.memory_features_bf16 {
        2
    } else {
        dtype.size_in_bytes() as u64
    };
    let mem = cfg.mem_dim() as u64 * e * e;
    let lo = (cfg.image_size / 4) as u64;
    mem * feat_dtype
        + mem * dtype.size_in_bytes() as u64
        + lo * lo * 4
        + cfg.hidden_dim() as u64 * 4
}

/// Warm one model up on the first object of the first video and measure it.
#[allow(clippy::too_many_arguments)]
fn warm_up(
    opts: &BenchOptions,
    tag: &ModelTag,
    meta: &Metadata,
    device: &Device,
    sampler: &HostSampler,
    meter: &mem::DeviceMeter,
    budget_figure: BudgetFigure,
    model_opts: &ModelOptions,
    switches: &EnvSwitches,
) -> Result<ModelPlan> {
    let dtype = opts.precision.dtype();
    let weights = resolve_weights(opts, tag)?;
    let cfg = &tag.config;
    let t = Instant::now();
    let model = build_model(cfg, &weights, dtype, device, model_opts)?;
    device.synchronize()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let v = &meta.videos[0];
    let o = &v.objects[0];
    let cache_file = v
        .cache_for(cfg.image_size)
        .ok_or_else(|| Error::Other(format!("no frame cache at side {}", cfg.image_size)))?;
    let mut tuning_failed = None;
    if model_opts.conv_tuner.options().tune {
        let frames = CachedFrames::open(cache_file, opts.max_frames_in_mem)?;
        let session_opts = opts
            .session_options()
            .with_profiler(switches.profiler.clone());
        // A failed search already falls back per shape; a pass that fails as a whole (out of
        // memory between two searches) does not stop setup either: the shapes it reached keep
        // their choices, the others are chosen when the warm-up below meets them, and the
        // failure is recorded. A warm-up that fails the same way is a real error.
        if let Err(e) = tuning_pass(&model, frames, device, session_opts, o, tag.prompt) {
            let why = e.to_string().lines().next().unwrap_or("").to_string();
            if !opts.quiet {
                eprintln!(
                    "warning: {}: the convolution tuning pass failed ({why}); setup goes on",
                    tag.name
                );
            }
            tuning_failed = Some(why);
        }
        meter.trim()?;
    }
    let rss1 = mem::current_rss_bytes();
    sampler.reset_peak();
    meter.reset_peak()?;
    let frames = CachedFrames::open(cache_file, opts.max_frames_in_mem)?;
    let n = v.frames.len();
    let session_opts = opts
        .session_options()
        .with_profiler(switches.profiler.clone());
    let warm = warm_up_frames(&cfg.tracker, session_opts.cuda_graph && device.is_cuda())
        .min(n - o.prompt_frame);
    // The same fences and CUDA graphs as phase B, so the measured peak (graph memory pool
    // included) is the one phase B will see.
    let mut session = Session::with_frames(&model, Box::new(frames), device, session_opts);
    let mut curve = Vec::new();
    let run = (|| -> Result<()> {
        prompt_object(&mut session, 1, o, tag.prompt)?;
        let mut rss_after = Vec::new();
        session.propagate(
            Some(o.prompt_frame),
            Some(warm.saturating_sub(1)),
            false,
            |_r| {
                rss_after.push(mem::current_rss_bytes());
                Ok(())
            },
        )?;
        device.synchronize()?;
        let banked = session
            .bank_sizes()
            .values()
            .map(|s| s.2)
            .next()
            .unwrap_or(0);
        // Bank entries grow by one per tracked frame until the window is full.
        let k = rss_after.len();
        for (i, r) in rss_after.into_iter().enumerate() {
            curve.push((banked.saturating_sub(k - 1 - i).max(1), r));
        }
        Ok(())
    })();
    if let Err(e) = run {
        let what = if opts.precision == Precision::F32 {
            String::new()
        } else {
            format!(" at precision {}", opts.precision)
        };
        return Err(match e {
            Error::Candle(c) => Error::Input(format!(
                "{} cannot run{what} on {}: {}",
                tag.name,
                opts.device,
                c.to_string().lines().next().unwrap_or("")
            )),
            other => other,
        });
    }
    drop(session);
    let peak = sampler.peak_rss_bytes().max(rss1);
    let dev = meter.peaks()?;
    let entry = bank_entry_bytes(cfg, dtype);
    let max_entries = 1 + 3 * cfg.tracker.num_maskmem.saturating_sub(1);
    let banked_now = curve.last().map(|c| c.0).unwrap_or(0);
    let longest = meta
        .videos
        .iter()
        .map(|v| (v.frames.len(), v.width * v.height))
        .max()
        .unwrap_or((0, 0));
    let s = cfg.image_size as u64;
    // What grows after the warm-up: the memory bank up to its bound (device memory on a GPU),
    // and on the host the bit-packed masks of the longest video plus the resident cached frames.
    let bank_growth = max_entries.saturating_sub(banked_now) as u64 * entry;
    let host_growth = longest.0 as u64 * (longest.1 as u64).div_ceil(8)
        + longest.0.min(opts.max_frames_in_mem) as u64 * s * s * 3;
    let predicted = match budget_figure {
        // Discrete GPU: the pool's high-water mark (weights, activations, cuDNN workspace).
        BudgetFigure::Device => dev.peak_alloc_bytes.unwrap_or(peak) + bank_growth,
        // Unified memory: host and device allocations draw on the same RAM.
        BudgetFigure::System => {
            peak + host_growth + dev.peak_alloc_bytes.unwrap_or(0) + bank_growth
        }
        BudgetFigure::ProcessRss => peak + bank_growth + host_growth,
    };
    let fits = opts.mem_budget_bytes.is_none_or(|b| b.allows(predicted));
    let weights_fingerprint = match &weights {
        WeightsSource::Checkpoint { path } => Some(file_fingerprint(path)?),
        WeightsSource::Random { .. } => None,
    };
    Ok(ModelPlan {
        name: tag.name.clone(),
        prompt: tag.prompt,
        config: cfg.clone(),
        weights,
        load_ms,
        weights_bytes: weights_tensor_bytes(cfg, dtype)?,
        activation_peak_bytes: peak.saturating_sub(rss1),
        rss_by_bank_size: curve,
        bank_entry_bytes: entry,
        bank_max_entries: max_entries,
        device_peak_alloc_bytes: dev.peak_alloc_bytes,
        predicted_peak_bytes: predicted,
        fits_budget: fits,
        tuning_failed,
        weights_fingerprint,
    })
}

/// `1 video`, `2 videos`.
pub fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Run phase A. Returns the written configuration.
pub fn run_setup(
    opts: &BenchOptions,
    device: &Device,
    switches: &EnvSwitches,
) -> Result<InferenceConfig> {
    let t0 = Instant::now();
    // Probing is conservative: no timed search (only the tuning pass searches, with
    // --enable-cudnn-tuning), and the pool is trimmed back before anything is measured.
    let info = mem::probe(device, &opts.device, &opts.host_root)?;
    mem::DeviceMeter::new(device).trim()?;
    // The unified-memory rule again, now that the probe knows whether the GPU is integrated (the
    // launcher checked it from the Jetson files alone).
    let jetson = crate::host::jetson::detect(opts.host_root.path()).is_some();
    mem::check_unified_budget(
        &opts.host_root,
        info.unified_memory || jetson,
        opts.mem_budget_bytes,
    )?;
    let opts = &opts.with_device_defaults(&info, device.is_cuda());
    if !opts.quiet {
        eprintln!(
            "device {}: {} (total {:.0} MiB, free {:.0} MiB{})",
            info.device,
            info.name,
            info.total_bytes.unwrap_or(0) as f64 / 1048576.0,
            info.free_bytes.unwrap_or(0) as f64 / 1048576.0,
            if info.unified_memory {
                ", unified memory"
            } else {
                ""
            }
        );
    }
    // Every check that needs no model comes before the first file is written: among them a
    // results CSV in --out-dir that this version can resume (not someone else's file).
    preflight(opts)?;
    Results::resume(&opts.out_dir.join(CSV_NAME))?;
    let mut meta = scan_split(opts)?;
    report_problems(opts, &meta, 0)?;
    if !opts.quiet {
        let objs: usize = meta.videos.iter().map(|v| v.objects.len()).sum();
        eprintln!(
            "split {}: {}, {} with prompts ({} left out)",
            opts.split_dir.display(),
            plural(meta.videos.len(), "video"),
            plural(objs, "object"),
            plural(meta.issues.len(), "problem")
        );
    }
    let mut sides: Vec<usize> = opts.models.iter().map(|m| m.config.image_size).collect();
    sides.sort_unstable();
    sides.dedup();
    let caches = plan_caches(opts, &mut meta, &sides);
    check_cache_space(opts, &caches)?;
    std::fs::create_dir_all(&opts.preprocessed_dir)
        .map_err(|e| Error::io(&opts.preprocessed_dir, e))?;
    let known = meta.issues.len();
    write_caches(opts, &mut meta, caches)?;
    report_problems(opts, &meta, known)?;

    // What the budget is compared with; the warm-up predicts that figure.
    let budget_figure = BudgetFigure::for_device(device, &info);
    // One tuner for every model of the run: the table setup writes holds all their shapes.
    let conv = conv_options(opts, device, true);
    tuning::set_candle_matmul_tf32(conv.tf32);
    let tuner = std::sync::Arc::new(ConvTuner::new(conv));
    let model_opts = ModelOptions::new(tuner.clone(), switches.fused_attention);
    let sampler = HostSampler::start(Duration::from_millis(5));
    let meter = mem::DeviceMeter::new(device);
    let mut plans = Vec::new();
    let b = bar(opts.quiet, opts.models.len() as u64, "warm-up");
    for tag in &opts.models {
        b.set_message(tag.name.clone());
        let plan = warm_up(
            opts,
            tag,
            &meta,
            device,
            &sampler,
            &meter,
            budget_figure,
            &model_opts,
            switches,
        )?;
        meter.trim()?;
        plans.push(plan);
        b.inc(1);
    }
    b.finish_and_clear();
    sampler.stop();
    if let Some(budget) = opts.mem_budget_bytes {
        for p in plans.iter().filter(|p| !p.fits_budget) {
            eprintln!(
                "warning: {} does not fit --mem-budget-mb {budget}: predicted peak {:.1} MiB; its rows will be budget_exceeded",
                p.name,
                p.predicted_peak_bytes as f64 / 1048576.0
            );
        }
        if plans.iter().all(|p| !p.fits_budget) {
            let need = plans
                .iter()
                .map(|p| p.predicted_peak_bytes)
                .min()
                .unwrap_or(0);
            return Err(Error::Budget(format!(
                "no model fits --mem-budget-mb {budget}: the smallest predicted peak is {:.1} MiB",
                need as f64 / 1048576.0
            )));
        }
    }
    let mut conv_tuning = tuner.table();
    conv_tuning.device = Some(info.name.clone());
    let tuned = conv_tuning.count(Source::Tuned);
    let fell_back = conv_tuning.count(Source::Fallback);
    let failed_passes: Vec<String> = plans
        .iter()
        .filter_map(|p| p.tuning_failed.as_ref().map(|w| format!("{}: {w}", p.name)))
        .collect();
    let shapes = conv_tuning.entries.len();
    let (cudnn_benchmark, cudnn_note) = if opts.disable_cudnn {
        (
            false,
            "disabled (--disable-cudnn): convolutions run without cuDNN".to_string(),
        )
    } else if matches!(device, Device::Cpu) {
        let asked = if opts.enable_cudnn_tuning {
            "requested, but "
        } else {
            ""
        };
        (false, format!("{asked}cuDNN does not apply to the CPU"))
    } else if !cfg!(feature = "cudnn") {
        (
            false,
            "this build has no cuDNN (built without the cudnn feature)".to_string(),
        )
    } else if !opts.enable_cudnn_tuning {
        (
            false,
            format!(
                "not requested: {shapes} convolution shapes use cuDNN's heuristic choice within {} MiB",
                opts.workspace_mb
            ),
        )
    } else {
        (
            tuned > 0,
            format!(
                "{tuned} of {shapes} convolution shapes tuned within {} MiB, {fell_back} fell back to the heuristic{}",
                opts.workspace_mb,
                if failed_passes.is_empty() {
                    String::new()
                } else {
                    format!("; tuning passes that failed: {}", failed_passes.join("; "))
                }
            ),
        )
    };
    if !opts.quiet && device.is_cuda() {
        eprintln!("convolutions: {cudnn_note}");
        if fell_back > 0 {
            for e in conv_tuning
                .entries
                .iter()
                .filter(|e| e.source == Source::Fallback)
            {
                eprintln!(
                    "  {}: {}",
                    e.shape.describe(),
                    e.note.as_deref().unwrap_or("")
                );
            }
        }
    }

    let cfg = InferenceConfig {
        setup_pid: std::process::id(),
        setup_devices_opened: crate::cuda::devices_opened(),
        options: opts.clone(),
        device: info,
        cudnn_benchmark,
        cudnn_note,
        conv_tuning,
        models: plans,
        budget_figure,
        setup_ms: t0.elapsed().as_secs_f64() * 1e3,
    };
    // Commit: metadata.json and inference_config.json are replaced only now, when the whole
    // setup succeeded; a setup that failed earlier left the previous pair as it was.
    write_json(&opts.preprocessed_dir.join(METADATA_NAME), &meta)?;
    write_json(&opts.preprocessed_dir.join(CONFIG_NAME), &cfg)?;
    if !opts.quiet {
        for p in &cfg.models {
            let dev = p
                .device_peak_alloc_bytes
                .map(|d| format!(", device peak {:.1} MiB", d as f64 / 1048576.0))
                .unwrap_or_default();
            eprintln!(
                "{}: load {:.0} ms, weights {:.1} MiB, host warm-up peak +{:.1} MiB{dev}, predicted {} peak {:.1} MiB ({})",
                p.name,
                p.load_ms,
                p.weights_bytes as f64 / 1048576.0,
                p.activation_peak_bytes as f64 / 1048576.0,
                cfg.budget_figure,
                p.predicted_peak_bytes as f64 / 1048576.0,
                p.weights.label()
            );
        }
        eprintln!("setup done in {:.1} s", cfg.setup_ms / 1e3);
    }
    Ok(cfg)
}

/// Frames of the setup warm-up (prompt frame included): the memory bank's `num_maskmem` frames
/// and one more; with CUDA graphs, until the step of a tracked frame has been captured and
/// replayed once (`tracker::step`: its key is fixed once the pointers are full too, the next
/// frame warms it up and the one after captures it), so the step graph's memory pool is in the
/// measured peak, as it will be in phase B.
fn warm_up_frames(t: &crate::config::TrackerConfig, graphs: bool) -> usize {
    if graphs {
        t.num_maskmem.max(t.max_obj_ptrs_in_encoder) + 3
    } else {
        t.num_maskmem + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warm_up_reaches_the_step_graph_only_with_graphs() -> Result<()> {
        let cfg = crate::config::Registry::builtin()?.resolve("sam2.1_hiera_tiny")?;
        let t = &cfg.tracker;
        assert_eq!((t.num_maskmem, t.max_obj_ptrs_in_encoder), (7, 16));
        // eager: the bank's frames and one more
        assert_eq!(warm_up_frames(t, false), 8);
        // graphs: pointers full on tracked frame 16, warmed on 16, captured on 17, replayed on 18
        assert_eq!(warm_up_frames(t, true), 19);
        Ok(())
    }
}
