//! Phase B: track every (video, object, model) from the frame cache, time it, measure it, score
//! it, and keep the CSV current (atomic rewrite after every row, so a killed run loses at most
//! the row in flight and a re-run resumes).

use crate::bench::cache::CachedFrames;
use crate::bench::launch::Processes;
use crate::bench::mem::{self, HostSampler};
use crate::bench::model::{build_model, conv_options, prompt_object_at};
use crate::bench::plan::{
    write_json, InferenceConfig, Metadata, ModelPlan, ObjectMeta, PromptKind, SessionObjects,
    VideoMeta, WeightsSource, CONFIG_NAME, ROW_DELAY_ENV, SOURCE_FPS, SUMMARY_NAME,
};
use crate::bench::progress::bar;
use crate::bench::results::{self, mib, round, Results, Row, RowStatus, CSV_NAME};
pub use crate::bench::row_fill::scored_frames;
use crate::bench::row_fill::{masks_dir, one_line, save_object_masks, timing_columns};
use crate::bench::shard::{ShardFile, ShardLock};
use crate::bench::video_session::{run_video, videos_to_run, VideoJob};
use crate::cuda::tuning::{self, ConvTuner};
use crate::data::masks::{Mask, PackedMask};
use crate::data::overlay::write_overlay;
use crate::data::sav::Annotation;
use crate::error::{Error, Result};
use crate::eval::evaluator::ObjectScorer;
use crate::exec::EnvSwitches;
use crate::nn::ModelOptions;
use crate::sam2::sam2_base::Sam2Base;
use crate::tracker::frames::FrameSource;
use crate::tracker::session::Session;
use candle_core::{DType, Device};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Which frames of an object phase B feeds and scores: `--input-frame-stride` and
/// `--annotation-stride-frames`, as the original harness applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSelection {
    /// Feed `range(prompt, clip_end, input_stride)`; 1 = every frame.
    pub input_stride: usize,
    /// Score annotated frames with `(frame - prompt) % N == 0` only; 0 = off.
    pub annotation_stride: usize,
}

impl FrameSelection {
    pub fn of(opts: &crate::bench::plan::BenchOptions) -> Self {
        Self {
            input_stride: opts.input_frame_stride.max(1),
            annotation_stride: opts.annotation_stride_frames,
        }
    }

    /// How many frames are fed from `prompt` (included) to `clip_end` (excluded).
    pub fn fed_count(&self, prompt: usize, clip_end: usize) -> usize {
        clip_end.saturating_sub(prompt).div_ceil(self.input_stride)
    }

    /// The scored frames: the official rule's frames ([`scored_frames`]); with an input stride
    /// only fed frames (none before the prompt); with an annotation stride only those at a
    /// multiple of it from the prompt frame (Python's modulo: frames before the prompt count
    /// too), or the prompt frame alone when none is left.
    pub fn scored(&self, o: &ObjectMeta, clip_end: usize) -> Vec<usize> {
        let p = o.prompt_frame;
        let mut s = scored_frames(o, clip_end);
        if self.input_stride > 1 {
            let n = self.input_stride;
            s.retain(|&f| f >= p && (f - p).is_multiple_of(n));
        }
        if self.annotation_stride > 0 {
            let n = self.annotation_stride;
            s.retain(|&f| f % n == p % n);
            if s.is_empty() {
                s.push(p);
            }
        }
        s
    }
}

/// Every `stride`th frame of a video, starting at `offset`: session frame `j` is video frame
/// `offset + j * stride`.
struct StridedFrames<S> {
    inner: S,
    offset: usize,
    stride: usize,
}

impl<S: FrameSource> FrameSource for StridedFrames<S> {
    fn len(&self) -> usize {
        self.inner
            .len()
            .saturating_sub(self.offset)
            .div_ceil(self.stride)
    }

    fn size(&self) -> (usize, usize) {
        self.inner.size()
    }

    fn load_tensor(
        &self,
        idx: usize,
        image_size: usize,
        device: &Device,
    ) -> Result<candle_core::Tensor> {
        self.inner
            .load_tensor(self.offset + idx * self.stride, image_size, device)
    }
}

/// What tracking one object of a video with one model needs (one row); a video session of
/// several objects ([`crate::bench::video_session`]) makes one per object for its rows.
#[derive(Clone, Copy)]
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
        let sel = FrameSelection::of(&self.cfg.options);
        let prompt = match self.plan.prompt {
            PromptKind::Points => format!("point:{},{}", o.point.0, o.point.1),
            PromptKind::Bbox => format!(
                "box:{},{},{},{}",
                o.bbox[0], o.bbox[1], o.bbox[2], o.bbox[3]
            ),
            PromptKind::Mask => "mask:ground_truth".into(),
        };
        Row {
            video: self.video.name.clone(),
            object: o.id.clone(),
            model: self.plan.name.clone(),
            imgsz: self.plan.config.image_size,
            precision: self.cfg.options.precision,
            prompt,
            prompt_frame: o.prompt_frame,
            frames: sel.fed_count(o.prompt_frame, clip_end),
            processed_end_frame: clip_end,
            scored_frames: sel.scored(o, clip_end).len(),
            input_fps: Some(round(SOURCE_FPS / sel.input_stride as f64, 3)),
            input_frame_stride: sel.input_stride,
            annotation_stride_frames: sel.annotation_stride,
            // The budget this process enforces (from the inference config).
            mem_budget_MiB: self.cfg.options.mem_budget_bytes.map(|b| mib(b.bytes())),
            input_H: self.video.height,
            input_W: self.video.width,
            infer_H: self.plan.config.image_size,
            infer_W: self.plan.config.image_size,
            cudnn_benchmark: self.cfg.cudnn_benchmark,
            weights: self.plan.weights.label(),
            status: RowStatus::Ok,
            session_mode: self
                .cfg
                .options
                .session_objects_for(self.plan.prompt)
                .as_str()
                .into(),
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
        let sel = FrameSelection::of(opts);
        let scored = sel.scored(o, clip_end);
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
        // With an input stride the session sees only the fed frames, as consecutive frames.
        let stride = sel.input_stride;
        let frames: Box<dyn FrameSource> = if stride > 1 {
            Box::new(StridedFrames {
                inner: frames,
                offset: o.prompt_frame % stride,
                stride,
            })
        } else {
            Box::new(frames)
        };
        let to_video = |j: usize| (o.prompt_frame % stride) + j * stride;
        let prompt_idx = o.prompt_frame / stride;
        let mut session = Session::with_frames(
            model,
            frames,
            device,
            opts.session_options()
                .with_profiler(self.switches.profiler.clone()),
        );
        prompt_object_at(&mut session, prompt_idx, 1, o, self.plan.prompt)?;
        device.synchronize()?;
        row.setup_ms = Some(round(t_setup.elapsed().as_secs_f64() * 1e3, 1));

        let mut lat: Vec<f64> = Vec::new();
        let mut masks: Vec<Option<PackedMask>> = vec![None; clip_end];
        let mut first = true;
        let mut last = Instant::now();
        let fed = sel.fed_count(o.prompt_frame, clip_end);
        let frames_bar = bar(opts.quiet, fed as u64, "frames");
        let max = fed - 1;
        let outcome = session.propagate(Some(prompt_idx), Some(max), false, |r| {
            device.synchronize()?;
            let now = Instant::now();
            if !first {
                lat.push(now.duration_since(last).as_secs_f64() * 1e3);
            }
            first = false;
            let f = to_video(r.frame_idx);
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

        timing_columns(row, &lat, opts.warmup_frames);
        row.session_objects = Some(1);
        row.session_fps = row.fps;
        row.object_frames_per_s = row.fps;
        if let Some(s) = scorer.finish()? {
            let (j, f) = (s.j / 100.0, s.f / 100.0);
            row.J = Some(round(j, 4));
            row.F = Some(round(f, 4));
            row.JandF = Some(round((j + f) / 2.0, 4));
            row.JandF_proxy = row.JandF;
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
        if opts.save_masks {
            let dir = masks_dir(opts, &self.plan.name);
            save_object_masks(&dir, self.video, &o.id, &masks, clip_end)?;
        }
        Ok(())
    }
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
    // `error` rows of models this process does not run (the other processes of
    // --isolate-models) stay in the CSV until their own model's process retries them.
    let runs = |model: &str| {
        cfg.models
            .iter()
            .any(|p| p.name == model && only_model.is_none_or(|m| m == p.name))
    };
    for r in results::read_rows(&csv_path)? {
        if r.status == RowStatus::Error && !runs(&r.model) {
            results.push(r);
        }
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io(&opts.out_dir, e))?;
    results::write_rows(&csv_path, results.rows())?;
    record_pid(&opts.out_dir, !results.rows().is_empty())?;
    let kept = results.rows().iter().filter(|r| r.is_finished()).count();
    if !opts.quiet && kept > 0 {
        eprintln!(
            "resuming {}: {} already finished, kept",
            csv_path.display(),
            crate::bench::setup::plural(kept, "row")
        );
    }
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
        if opts.session_objects_for(plan.prompt) == SessionObjects::All {
            // a session per video: redo a video if any of its rows is missing (its finished
            // rows are replaced, never duplicated)
            let videos = videos_to_run(meta, &results, &plan.name);
            for v in videos {
                meter.trim()?;
                let ctx = RowContext {
                    cfg,
                    plan,
                    video: v,
                    object: &v.objects[0],
                    sampler: &sampler,
                    meter: &meter,
                    device,
                    switches,
                };
                let base_row = |o: &ObjectMeta| RowContext { object: o, ..ctx }.base_row();
                let clip_end = |o: &ObjectMeta| RowContext { object: o, ..ctx }.clip_end();
                let job = VideoJob {
                    cfg,
                    plan,
                    video: v,
                    sampler: &sampler,
                    meter: &meter,
                    device,
                    switches,
                    base_row: &base_row,
                    clip_end: &clip_end,
                };
                let missing = v
                    .objects
                    .iter()
                    .filter(|o| !results.is_done(&v.name, &o.id, &plan.name))
                    .count();
                let rows = run_video(&job, model.as_ref())?;
                if let (false, Some(r)) = (opts.quiet, rows.iter().find(|r| !r.error.is_empty())) {
                    if r.status == RowStatus::Error {
                        rows_bar.println(format!("error: {} {}: {}", v.name, plan.name, r.error));
                    }
                }
                for row in rows {
                    results.push(row);
                }
                results::write_rows(&csv_path, results.rows())?;
                rows_bar.inc(missing as u64);
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
            }
            drop(model);
            meter.trim()?;
            continue;
        }
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

/// The inference processes that wrote into `<out-dir>`'s CSV since it was last started afresh,
/// oldest first (`inference_pids.json`; a killed process never writes `summary.json`, so each
/// process records itself when it starts).
pub const PIDS_NAME: &str = "inference_pids.json";

/// Add this process to [`PIDS_NAME`]; `resumed`: the CSV kept rows of earlier processes (else
/// the list starts again).
fn record_pid(out_dir: &Path, resumed: bool) -> Result<()> {
    let path = out_dir.join(PIDS_NAME);
    let mut pids: Vec<u32> = if resumed {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    pids.push(std::process::id());
    write_json(&path, &pids)
}

/// `summary.json` and the terminal table, from the CSV as it is now. Returns the CSV's rows.
/// `jetson`: the launcher's Jetson capture (None off Jetson: the key is null).
pub fn write_summary(
    cfg: &InferenceConfig,
    processes: &Processes,
    out_dir: &Path,
    jetson: Option<&crate::bench::jetson::JetsonCapture>,
) -> Result<Vec<Row>> {
    let rows = results::read_rows(&out_dir.join(CSV_NAME))?;
    let inference_pids = processes.inference_pids();
    // Processes of earlier, resumed runs whose rows the CSV may still hold.
    let earlier: Vec<u32> = std::fs::read_to_string(out_dir.join(PIDS_NAME))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<u32>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !inference_pids.contains(p))
        .collect();
    let mut value = summary_value(cfg, &inference_pids, &rows);
    value["launcher_pid"] = serde_json::Value::from(processes.launcher_pid);
    value["earlier_inference_pids"] = serde_json::Value::from(earlier);
    value["processes"] =
        serde_json::to_value(processes).map_err(|e| Error::Other(format!("summary.json: {e}")))?;
    value["jetson"] =
        serde_json::to_value(jetson).map_err(|e| Error::Other(format!("summary.json: {e}")))?;
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
    Ok(rows)
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
        // The Jetson capture is the launcher's (write_summary); null off Jetson.
        "jetson": serde_json::Value::Null,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(annotated: &[usize], prompt: usize) -> ObjectMeta {
        ObjectMeta {
            id: "000".into(),
            label: None,
            annotations: annotated
                .iter()
                .map(|&f| (f, std::path::PathBuf::from(format!("{f:05}.png"))))
                .collect(),
            prompt_frame: prompt,
            point: (0, 0),
            bbox: [0, 0, 1, 1],
            prompt_area: 1,
        }
    }

    fn sel(input_stride: usize, annotation_stride: usize) -> FrameSelection {
        FrameSelection {
            input_stride,
            annotation_stride,
        }
    }

    #[test]
    fn strides_select_fed_and_scored_frames_like_the_original() {
        // 6 fps annotations of a 24 fps video: every 4th frame; prompt on frame 4.
        let o = object(&[0, 4, 8, 12, 16, 20, 24, 28], 4);
        assert_eq!(sel(1, 0).scored(&o, 29), vec![4, 8, 12, 16, 20, 24]);
        assert_eq!(sel(1, 0).fed_count(4, 29), 25);
        // Input stride 8: frames 4, 12, 20, 28 are fed; only those are scored.
        assert_eq!(sel(8, 0).fed_count(4, 29), 4);
        assert_eq!(sel(8, 0).scored(&o, 29), vec![4, 12, 20]);
        assert_eq!(sel(3, 0).fed_count(4, 10), 2);
        // Annotation stride 8: (f - 4) % 8 == 0, before the prompt too (Python's modulo).
        let before = object(&[0, 4, 8, 12, 16, 20], 12);
        assert_eq!(sel(1, 8).scored(&before, 21), vec![4, 12]);
        assert_eq!(sel(1, 4).scored(&before, 21), vec![4, 8, 12, 16]);
        // Nothing left: the prompt frame alone.
        let first = object(&[4, 8, 12, 16, 20, 24, 28], 4);
        assert_eq!(sel(1, 0).scored(&first, 29), vec![8, 12, 16, 20, 24]);
        assert_eq!(sel(1, 100).scored(&first, 29), vec![4]);
        // Both strides.
        assert_eq!(sel(8, 16).scored(&o, 29), vec![4, 20]);
    }

    #[test]
    fn strided_frames_map_session_to_video_frames() {
        let frames: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i * 20; 4 * 4 * 3]).collect();
        let rgb = crate::tracker::frames::RgbFrames::new(frames, 4, 4).unwrap();
        let s = StridedFrames {
            inner: rgb.clone(),
            offset: 1,
            stride: 3,
        };
        assert_eq!(s.len(), 3, "frames 1, 4, 7");
        let dev = Device::Cpu;
        for (j, f) in [(0, 1), (1, 4), (2, 7)] {
            let a = s.load_tensor(j, 32, &dev).unwrap().flatten_all().unwrap();
            let b = rgb.load_tensor(f, 32, &dev).unwrap().flatten_all().unwrap();
            assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        }
    }
}
