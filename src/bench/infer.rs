//! Phase B: track every (video, object, model) from the frame cache, time it, measure it, score
//! it, and keep the CSV current (atomic rewrite after every row, so a killed run loses at most
//! the row in flight and a re-run resumes).

use crate::bench::cache::CachedFrames;
use crate::bench::mem::{self, HostSampler};
use crate::bench::model::{build_model, conv_options, object_prompt_for};
use crate::bench::plan::{
    write_json, InferenceConfig, Metadata, ModelPlan, ObjectMeta, PromptKind, VideoMeta,
    WeightsSource, CONFIG_NAME, ROW_DELAY_ENV, SUMMARY_NAME,
};
use crate::bench::progress::bar;
use crate::bench::results::{self, mib, percentile, round, Results, Row, RowStatus, CSV_NAME};
use crate::bench::shard::{ShardFile, ShardLock};
use crate::cuda::tuning::{self, ConvTuner};
use crate::data::masks::{Mask, PackedMask};
use crate::data::overlay::write_overlay;
use crate::data::sav::Annotation;
use crate::error::{Error, Result};
use crate::eval::evaluator::ObjectScorer;
use crate::exec::EnvSwitches;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::session::Session;
use candle_core::{DType, Device};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The frames scored for an object: its annotated frames without the first and last (the
/// official SA-V and DAVIS rule), restricted to the processed clip.
pub fn scored_frames(o: &ObjectMeta, clip_end: usize) -> Vec<usize> {
    let mut ann: Vec<usize> = o.annotations.iter().map(|(f, _)| *f).collect();
    ann.sort_unstable();
    ann.dedup();
    if ann.len() <= 2 {
        return Vec::new();
    }
    ann[1..ann.len() - 1]
        .iter()
        .copied()
        .filter(|&f| f < clip_end)
        .collect()
}

struct RowContext<'a> {
    cfg: &'a InferenceConfig,
    plan: &'a ModelPlan,
    video: &'a VideoMeta,
    object: &'a ObjectMeta,
    sampler: &'a HostSampler,
    meter: &'a mem::DeviceMeter,
    device: &'a Device,
    switches: &'a EnvSwitches,
}

impl RowContext<'_> {
    fn base_row(&self) -> Row {
        let o = self.object;
        let clip_end = self.clip_end();
        let prompt = match self.plan.prompt {
            PromptKind::Points => format!("point:{},{}", o.point.0, o.point.1),
            PromptKind::Bbox => format!(
                "box:{},{},{},{}",
                o.bbox[0], o.bbox[1], o.bbox[2], o.bbox[3]
            ),
        };
        Row {
            video: self.video.name.clone(),
            object: o.id.clone(),
            model: self.plan.name.clone(),
            imgsz: self.plan.config.image_size,
            precision: self.cfg.options.precision,
            prompt,
            prompt_frame: o.prompt_frame,
            frames: clip_end - o.prompt_frame,
            processed_end_frame: clip_end,
            scored_frames: scored_frames(o, clip_end).len(),
            // The budget this process enforces (from the inference config).
            mem_budget_MiB: self.cfg.options.mem_budget_bytes.map(|b| mib(b.bytes())),
            input_H: self.video.height,
            input_W: self.video.width,
            infer_H: self.plan.config.image_size,
            infer_W: self.plan.config.image_size,
            cudnn_benchmark: self.cfg.cudnn_benchmark,
            weights: self.plan.weights.label(),
            status: RowStatus::Ok,
            ..Row::default()
        }
    }

    fn clip_end(&self) -> usize {
        let n = self.video.frames.len();
        let mc = self.cfg.options.max_clip_frames;
        if mc > 0 {
            (self.object.prompt_frame + mc).min(n)
        } else {
            n
        }
    }

    /// Track, time, measure and score one (video, object) with a loaded model.
    fn run(&self, model: &Sam2Base, row: &mut Row) -> Result<()> {
        let opts = &self.cfg.options;
        let o = self.object;
        let device = self.device;
        let (w, h) = (self.video.width, self.video.height);
        let clip_end = self.clip_end();
        let budget = opts.mem_budget_bytes;
        let track = o.track();
        let scored = scored_frames(o, clip_end);
        let mut scorer = ObjectScorer::new(&scored, false);
        let gt_of = |f: usize| -> Result<Mask> {
            let ann = o
                .annotations
                .iter()
                .find(|(af, _)| *af == f)
                .map(|(af, p)| Annotation {
                    frame: *af,
                    path: p.clone(),
                })
                .ok_or_else(|| Error::Other(format!("no annotation for frame {f}")))?;
            track.load_mask(&ann)
        };
        // Nothing is predicted before the prompt frame: those scored frames get empty masks.
        let empty = Mask::empty(w, h);
        for &f in scored.iter().filter(|&&f| f < o.prompt_frame) {
            scorer.feed(f, &empty, &gt_of(f)?)?;
        }

        self.sampler.reset_peak();
        self.meter.reset_peak()?;
        let cache_file = self
            .video
            .cache_for(self.plan.config.image_size)
            .ok_or_else(|| {
                Error::Input(format!(
                    "metadata.json has no frame cache of {} at side {}; rerun setup",
                    self.video.name, self.plan.config.image_size
                ))
            })?;
        let t_setup = Instant::now();
        let frames = CachedFrames::open(cache_file, opts.max_frames_in_mem)?;
        let mut session = Session::with_frames(
            model,
            Box::new(frames),
            device,
            opts.session_options()
                .with_profiler(self.switches.profiler.clone()),
        );
        session.add_prompt(o.prompt_frame, 1, &object_prompt_for(o, self.plan.prompt))?;
        device.synchronize()?;
        row.setup_ms = Some(round(t_setup.elapsed().as_secs_f64() * 1e3, 1));

        let mut lat: Vec<f64> = Vec::new();
        let mut masks: Vec<Option<PackedMask>> = vec![None; clip_end];
        let mut first = true;
        let mut last = Instant::now();
        let frames_bar = bar(opts.quiet, (clip_end - o.prompt_frame) as u64, "frames");
        let max = clip_end - o.prompt_frame - 1;
        let outcome = session.propagate(Some(o.prompt_frame), Some(max), false, |r| {
            device.synchronize()?;
            let now = Instant::now();
            if !first {
                lat.push(now.duration_since(last).as_secs_f64() * 1e3);
            }
            first = false;
            let f = r.frame_idx;
            let fg = r
                .video_res_masks
                .get(0)?
                .squeeze(0)?
                .gt(0f32)?
                .to_dtype(DType::U8)?
                .flatten_all()?
                .to_vec1::<u8>()?;
            let mask = Mask::from_vec(w, h, fg.into_iter().map(|v| v > 0).collect())?;
            if scorer.is_scored(f) {
                scorer.feed(f, &mask, &gt_of(f)?)?;
            }
            if f < masks.len() {
                masks[f] = Some(PackedMask::from_mask(&mask));
            }
            let rss = mem::current_rss_bytes();
            if let Some(b) = budget {
                let used = self.cfg.budget_figure.read(self.meter, rss)?;
                if !b.allows(used) {
                    return Err(Error::Budget(format!(
                        "{} used {:.1} MiB on frame {f}, over the {:.1} MiB budget",
                        self.cfg.budget_figure,
                        used as f64 / 1048576.0,
                        b.bytes() as f64 / 1048576.0
                    )));
                }
            }
            frames_bar.inc(1);
            last = Instant::now();
            Ok(())
        });
        frames_bar.finish_and_clear();
        drop(session);
        let dev = self.meter.peaks()?;
        row.cpu_peak_rss_MiB = Some(mib(self.sampler.peak_rss_bytes()));
        row.system_peak_MiB = Some(mib(self.sampler.system_peak_used_bytes()));
        row.gpu_peak_alloc_MiB = dev.peak_alloc_bytes.map(mib);
        row.gpu_peak_reserved_MiB = dev.peak_reserved_bytes.map(mib);
        outcome?;

        if !lat.is_empty() {
            let total: f64 = lat.iter().sum();
            row.fps = Some(round(lat.len() as f64 * 1e3 / total, 2));
            row.latency_ms = Some(round(total / lat.len() as f64, 1));
            let steady = &lat[opts.warmup_frames.min(lat.len())..];
            if !steady.is_empty() {
                let st: f64 = steady.iter().sum();
                row.fps_steady = Some(round(steady.len() as f64 * 1e3 / st, 2));
            }
            let mut sorted = lat.clone();
            sorted.sort_by(f64::total_cmp);
            row.latency_p50_ms = percentile(&sorted, 50.0).map(|v| round(v, 1));
            row.latency_p90_ms = percentile(&sorted, 90.0).map(|v| round(v, 1));
            row.latency_p99_ms = percentile(&sorted, 99.0).map(|v| round(v, 1));
        }
        if let Some(s) = scorer.finish()? {
            let (j, f) = (s.j / 100.0, s.f / 100.0);
            row.J = Some(round(j, 4));
            row.F = Some(round(f, 4));
            row.JandF = Some(round((j + f) / 2.0, 4));
        }
        if opts.save_overlays {
            let dir = opts
                .out_dir
                .join("overlays")
                .join(&self.video.name)
                .join(&o.id)
                .join(&self.plan.name);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            for (f, m) in masks.iter().enumerate() {
                let Some(m) = m else { continue };
                let fg = m.to_mask().data;
                write_overlay(&dir.join(format!("{f:05}.png")), &self.video.frames[f], &fg)?;
            }
            row.overlay = dir.display().to_string();
        }
        Ok(())
    }
}

fn one_line(e: &Error) -> String {
    // the first line only: candle errors carry a backtrace when RUST_BACKTRACE is set
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// A (video, object, model) key.
type Key = (String, String, String);

/// Run phase B for every model of `cfg` (or only `only_model`). Returns the rows of the CSV.
pub fn run_inference(
    cfg: &InferenceConfig,
    meta: &Metadata,
    device: &Device,
    only_model: Option<&str>,
    switches: &EnvSwitches,
) -> Result<Vec<Row>> {
    let opts = &cfg.options;
    let dtype = opts.precision.dtype();
    // The algorithms setup chose (tuned or heuristic) for every convolution shape; no search here.
    let conv = conv_options(opts, device, false);
    tuning::set_candle_matmul_tf32(conv.tf32);
    let tuner = ConvTuner::new(conv);
    tuner.load_table(&cfg.conv_tuning);
    let model_opts = ModelOptions::new(std::sync::Arc::new(tuner), switches.fused_attention);
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io(&opts.out_dir, e))?;
    // A shard runs only its part of the work list, and says so in its out-dir first.
    // The lock is held until this function returns: no second process writes this shard.
    let (own, _lock): (Option<BTreeSet<Key>>, Option<ShardLock>) = match opts.shard {
        Some(spec) => {
            let lock = ShardLock::acquire(&opts.out_dir)?;
            let file = ShardFile::new(cfg, meta, spec);
            file.claim(&opts.out_dir)?;
            (Some(file.own_keys()), Some(lock))
        }
        None => (None, None),
    };
    let in_shard = |v: &str, o: &str, m: &str| {
        own.as_ref()
            .is_none_or(|k| k.contains(&(v.to_string(), o.to_string(), m.to_string())))
    };
    let csv_path = opts.out_dir.join(CSV_NAME);
    let mut results = Results::resume(&csv_path)?;
    results::write_rows(&csv_path, results.rows())?;
    let delay = std::env::var(ROW_DELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let sampler = HostSampler::start(Duration::from_millis(5));
    let meter = mem::DeviceMeter::new(device);
    let plans: Vec<&ModelPlan> = cfg
        .models
        .iter()
        .filter(|p| only_model.is_none_or(|m| m == p.name))
        .collect();
    if plans.is_empty() {
        return Err(Error::Input(format!(
            "model {} is not in {}",
            only_model.unwrap_or("-"),
            CONFIG_NAME
        )));
    }
    let units_of = |plan: &ModelPlan| -> Vec<(&VideoMeta, &ObjectMeta)> {
        meta.videos
            .iter()
            .flat_map(|v| v.objects.iter().map(move |o| (v, o)))
            .filter(|(v, o)| in_shard(&v.name, &o.id, &plan.name))
            .collect()
    };
    let total_rows: usize = plans.iter().map(|p| units_of(p).len()).sum();
    let rows_bar = bar(opts.quiet, total_rows as u64, "rows");
    for plan in plans {
        let all = units_of(plan);
        let todo: Vec<(&VideoMeta, &ObjectMeta)> = all
            .iter()
            .copied()
            .filter(|(v, o)| !results.is_done(&v.name, &o.id, &plan.name))
            .collect();
        rows_bar.inc((all.len() - todo.len()) as u64);
        if todo.is_empty() {
            continue;
        }
        let model = if plan.fits_budget {
            rows_bar.set_message(format!("load {}", plan.name));
            Some(build_model(
                &plan.config,
                &plan.weights,
                dtype,
                device,
                &model_opts,
            )?)
        } else {
            None
        };
        rows_bar.set_message(plan.name.clone());
        let mut current_video: Option<&str> = None;
        for (v, o) in todo {
            if current_video != Some(v.name.as_str()) {
                // between videos: hand cached device memory back so every video starts from
                // the same baseline (the baseline_* columns show it)
                meter.trim()?;
                current_video = Some(v.name.as_str());
            }
            let ctx = RowContext {
                cfg,
                plan,
                video: v,
                object: o,
                sampler: &sampler,
                meter: &meter,
                device,
                switches,
            };
            let mut row = ctx.base_row();
            row.baseline_rss_MiB = Some(mib(mem::current_rss_bytes()));
            row.baseline_gpu_MiB = meter.peaks()?.used_bytes.map(mib);
            match &model {
                None => {
                    row.status = RowStatus::BudgetExceeded;
                    row.error = format!(
                        "setup predicted a {:.1} MiB peak, over the budget",
                        plan.predicted_peak_bytes as f64 / 1048576.0
                    );
                }
                Some(m) => match ctx.run(m, &mut row) {
                    Ok(()) => {}
                    Err(Error::Budget(msg)) => {
                        row.status = RowStatus::BudgetExceeded;
                        row.error = msg;
                    }
                    Err(e) => {
                        row.status = RowStatus::Error;
                        row.error = one_line(&e);
                        if !opts.quiet {
                            rows_bar.println(format!(
                                "error: {} {} {}: {}",
                                v.name, o.id, plan.name, row.error
                            ));
                        }
                    }
                },
            }
            meter.trim()?;
            results.push(row);
            results::write_rows(&csv_path, results.rows())?;
            rows_bar.inc(1);
            if let Some(d) = delay {
                std::thread::sleep(d);
            }
        }
        drop(model);
        meter.trim()?;
    }
    rows_bar.finish_and_clear();
    sampler.stop();
    Ok(results.rows().to_vec())
}

/// `summary.json` and the terminal table, from the CSV as it is now.
pub fn write_summary(
    cfg: &InferenceConfig,
    inference_pids: &[u32],
    out_dir: &Path,
) -> Result<PathBuf> {
    let rows = results::read_rows(&out_dir.join(CSV_NAME))?;
    let value = summary_value(cfg, inference_pids, &rows);
    let path = out_dir.join(SUMMARY_NAME);
    write_json(&path, &value)?;
    if !cfg.options.quiet {
        eprintln!("\n{}", summary_text(cfg, &rows));
        eprintln!(
            "results: {} and {}",
            out_dir.join(CSV_NAME).display(),
            path.display()
        );
    }
    Ok(path)
}

fn random_weights(cfg: &InferenceConfig) -> Vec<String> {
    cfg.models
        .iter()
        .filter(|m| matches!(m.weights, WeightsSource::Random { .. }))
        .map(|m| format!("{}: {}", m.name, m.weights.label()))
        .collect()
}

/// The content of `summary.json` for these rows (a shard's also names its shard).
pub fn summary_value(
    cfg: &InferenceConfig,
    inference_pids: &[u32],
    rows: &[Row],
) -> serde_json::Value {
    let models = results::summarize(rows);
    let random = random_weights(cfg);
    let mut value = serde_json::json!({
        "setup_pid": cfg.setup_pid,
        "inference_pids": inference_pids,
        "device": cfg.device,
        "precision": cfg.options.precision,
        "mem_budget_MiB": cfg.options.mem_budget_bytes.map(|b| mib(b.bytes())),
        "budget_figure": cfg.budget_figure,
        "cudnn_benchmark": cfg.cudnn_benchmark,
        "cudnn_note": cfg.cudnn_note,
        "setup_ms": cfg.setup_ms,
        "rows": rows.len(),
        "random_weights": random,
        "accuracy_meaningful": random.is_empty(),
        "models": models,
        "model_setup": cfg.models.iter().map(|m| serde_json::json!({
            "model": m.name,
            "weights": m.weights.label(),
            "load_ms": m.load_ms,
            "weights_MiB": mib(m.weights_bytes),
            "warmup_activation_peak_MiB": mib(m.activation_peak_bytes),
            "predicted_peak_MiB": mib(m.predicted_peak_bytes),
            "fits_budget": m.fits_budget,
        })).collect::<Vec<_>>(),
    });
    if let Some(s) = cfg.options.shard {
        value["shard"] = serde_json::Value::from(s.to_string());
    }
    value
}

/// The table the benchmark prints at the end (and the random-weights warning).
pub fn summary_text(cfg: &InferenceConfig, rows: &[Row]) -> String {
    let mut out = results::format_table(&results::summarize(rows));
    let random = random_weights(cfg);
    if !random.is_empty() {
        out.push_str(&format!(
            "\n!!! RANDOM WEIGHTS were used ({}): J&F is meaningless; speed and memory are real.",
            random.join("; ")
        ));
    }
    out
}
