//! `vosbench parity`: measure stage-by-stage parity of a model against a reference fixture
//! written by the official PyTorch code (tests/reference/), on any device, from the binary alone.
//! Exit code 1 when a stage exceeds the tolerance, 2 for bad input.

use crate::cli::common::parse_device;
use crate::config::{ObjectBatching, Registry};
use crate::cuda::tuning::{ConvOptions, ConvTuner};
use crate::error::{Error, Result};
use crate::exec::EnvSwitches;
use crate::nn::ModelOptions;
use crate::parity::{self, StageResult, TrackedRun};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model variant or alias (e.g. sam2.1_hiera_tiny, edgetam), or a variant JSON file.
    #[arg(long)]
    pub model: String,
    /// Fixture folder: stages.safetensors (and model.pt) from make_sam2_fixtures.py /
    /// make_edgetam_fixtures.py; with --tracking a video fixture (tracking.safetensors and frames/
    /// or pillow_rgb.safetensors) or a multi-object fixture from make_multi_object_fixture.py.
    #[arg(long)]
    pub fixture: PathBuf,
    /// Weights: an original-format checkpoint ({"model": state_dict}) or a vosbench-converted
    /// .safetensors [default: FIXTURE/model.pt].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Largest relative L2 error a stage may have.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Write every result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The fixture is a video fixture: track every run and compare frame by frame. Tensors in
    /// FIXTURE/weight_overrides.safetensors, when present, replace those of the weights.
    #[arg(long)]
    pub tracking: bool,
    /// With --tracking: the folder holding the video's frames (pillow_rgb.safetensors or
    /// frames/*.jpg); for a multi-object fixture the scene folder (pillow_rgb.safetensors and
    /// prompts.json) [default: FIXTURE].
    #[arg(long)]
    pub frames: Option<PathBuf>,
    /// With --tracking on a multi-object fixture: run the objects of a frame batched or in a
    /// per-object loop.
    #[arg(long, default_value = "batched")]
    pub object_batching: String,
    /// With --tracking: largest relative L2 of a frame's low-res logits and object pointer, and
    /// largest relative error of its object score.
    #[arg(long, default_value_t = 1e-3)]
    pub track_tolerance: f64,
    /// With --tracking: smallest mask IoU of a frame.
    #[arg(long, default_value_t = 0.999)]
    pub min_iou: f64,
    /// Model dtype (f32, f16, bf16); half types need looser tolerances (docs/parity.md).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Allow TF32 for f32 convolutions and matmuls (CUDA).
    #[arg(long)]
    pub tf32: bool,
    /// Time cuDNN's candidate algorithms for every convolution shape instead of the heuristic.
    #[arg(long)]
    pub enable_cudnn_tuning: bool,
    /// Convolution workspace limit, MiB.
    #[arg(long, default_value_t = 256)]
    pub workspace_mb: usize,
}

/// The model options of the run (its convolution settings, the fused-attention switch) and the
/// weights cast to `--precision`.
fn prepare(
    args: &Args,
    switches: &EnvSwitches,
    vb: candle_nn::VarBuilder<'static>,
) -> Result<(candle_nn::VarBuilder<'static>, ModelOptions)> {
    let conv = ConvOptions::new(args.workspace_mb, args.tf32, args.enable_cudnn_tuning);
    crate::cuda::tuning::set_candle_matmul_tf32(conv.tf32);
    let model_opts = ModelOptions::new(Arc::new(ConvTuner::new(conv)), switches.fused_attention);
    let dtype = args.precision.parse::<crate::config::Precision>()?.dtype();
    Ok((vb.set_dtype(dtype), model_opts))
}

/// A one-line summary of the convolution algorithms used (CUDA runs).
fn conv_summary(tuner: &ConvTuner) -> Option<String> {
    use crate::cuda::tuning::Source;
    let t = tuner.table();
    if t.entries.is_empty() {
        return None;
    }
    Some(format!(
        "convolutions: {} shapes, {} tuned, {} heuristic, {} fell back",
        t.entries.len(),
        t.count(Source::Tuned),
        t.count(Source::Heuristic),
        t.count(Source::Fallback)
    ))
}

fn check_tolerance(v: f64, what: &str) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::Input(format!(
            "{what} must be a positive number, got {v}"
        )));
    }
    Ok(())
}

fn write_json(path: &PathBuf, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("cannot serialise results: {e}")))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// Finite numbers as JSON numbers, the rest as strings ("inf", "NaN").
fn num(v: f64) -> serde_json::Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(v.to_string())
    }
}

fn print_stages(results: &[StageResult], tol: f64) {
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$}  {:>10}  {:>10}  {:>10}  {:<5}  ok",
        "stage", "numel", "rel L2", "max abs", "fed"
    );
    for r in results {
        println!(
            "{:<w$}  {:>10}  {:>10.3e}  {:>10.3e}  {:<5}  {}{}",
            r.name,
            r.numel,
            r.rel_l2,
            r.max_abs,
            r.feed.as_str(),
            if r.ok(tol) { "ok" } else { "FAIL" },
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.note)
            }
        );
    }
}

/// The worst stage: any NaN first, then the largest relative L2.
fn worst(results: &[StageResult]) -> Option<&StageResult> {
    results.iter().max_by(|a, b| {
        let key = |r: &StageResult| {
            if r.rel_l2.is_nan() {
                f64::INFINITY
            } else {
                r.rel_l2
            }
        };
        key(a).total_cmp(&key(b))
    })
}

fn run_stages_cmd(args: &Args, switches: &EnvSwitches, header: serde_json::Value) -> Result<()> {
    let reg = Registry::builtin()?;
    let cfg = reg.resolve(&args.model)?;
    let device = parse_device(&args.device)?;
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(|| args.fixture.join("model.pt"));
    let stages = parity::load_stages(&args.fixture)?;
    let t0 = Instant::now();
    let (vb, model_opts) = prepare(
        args,
        switches,
        parity::load_weights(&weights, None, &cfg, &device)?,
    )?;
    let results = parity::run_stages_with(&cfg, vb, &stages, &device, &model_opts)?;
    if let Some(s) = conv_summary(&model_opts.conv_tuner) {
        println!("{s}");
    }
    let secs = t0.elapsed().as_secs_f64();
    let skipped = parity::uncompared(&stages, &results);
    print_stages(&results, args.tolerance);
    let failed: Vec<&StageResult> = results.iter().filter(|r| !r.ok(args.tolerance)).collect();
    let w = worst(&results);
    println!(
        "{} stages compared in {secs:.1} s on {} ({}, {})",
        results.len(),
        args.device,
        cfg.name,
        args.fixture.display()
    );
    if let Some(w) = w {
        println!(
            "worst: {} rel L2 {:.3e} max abs {:.3e} (tolerance {:.0e})",
            w.name, w.rel_l2, w.max_abs, args.tolerance
        );
    }
    if !skipped.is_empty() {
        println!(
            "not compared (unknown to this runner): {}",
            skipped.join(", ")
        );
    }
    if let Some(path) = &args.json {
        let mut v = header;
        v["model"] = json!(cfg.name);
        v["weights"] = json!(weights.display().to_string());
        v["seconds"] = json!(secs);
        v["stages"] = results
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "numel": r.numel,
                    "rel_l2": num(r.rel_l2),
                    "max_abs": num(r.max_abs),
                    "fed": r.feed.as_str(),
                    "ok": r.ok(args.tolerance),
                    "note": r.note,
                })
            })
            .collect();
        v["worst"] = json!(w.map(|w| w.name.clone()));
        v["not_compared"] = json!(skipped);
        v["pass"] = json!(failed.is_empty() && !results.is_empty());
        write_json(path, &v)?;
    }
    if results.is_empty() {
        return Err(Error::Input(format!(
            "{}: the fixture holds no stage this runner compares",
            args.fixture.display()
        )));
    }
    if !failed.is_empty() {
        let w = w.map(|w| w.name.as_str()).unwrap_or("");
        return Err(Error::Other(format!(
            "{} of {} stages exceed relative L2 {:.0e} (worst: {w})",
            failed.len(),
            results.len(),
            args.tolerance
        )));
    }
    Ok(())
}

fn frame_ok(f: &parity::TrackedFrame, args: &Args) -> bool {
    f.low_res_rel_l2 <= args.track_tolerance
        && f.obj_ptr_rel_l2 <= args.track_tolerance
        && f.object_score_rel <= args.track_tolerance
        && f.iou >= args.min_iou
}

fn print_runs(runs: &[TrackedRun], args: &Args) {
    let w = runs.iter().map(|r| r.run.len()).max().unwrap_or(3).max(3);
    println!(
        "{:<w$} {:>3} {:>5}  {:>12}  {:>8}  {:>9}  {:>9}  {:>11}  ok",
        "run", "obj", "frame", "low-res relL2", "IoU", "score", "ref score", "obj_ptr rel"
    );
    for run in runs {
        for f in &run.frames {
            println!(
                "{:<w$} {:>3} {:>5}  {:>12.3e}  {:>8.5}  {:>9.4}  {:>9.4}  {:>11.3e}  {}",
                f.run,
                f.obj_id,
                f.frame,
                f.low_res_rel_l2,
                f.iou,
                f.object_score,
                f.ref_object_score,
                f.obj_ptr_rel_l2,
                if frame_ok(f, args) { "ok" } else { "FAIL" }
            );
        }
        println!(
            "{}: prompt on frame {}, prompt IoU {:.5}, {} frames, all-frames low-res rel L2 {:.3e}",
            run.run,
            run.prompt_frame,
            run.prompt_iou,
            run.frames.len(),
            run.low_res_rel_l2_all
        );
    }
}

fn run_tracking_cmd(args: &Args, switches: &EnvSwitches, header: serde_json::Value) -> Result<()> {
    check_tolerance(args.track_tolerance, "--track-tolerance")?;
    let batching = args.object_batching.parse::<ObjectBatching>()?;
    if !(0.0..=1.0).contains(&args.min_iou) {
        return Err(Error::Input(format!(
            "--min-iou must lie in [0, 1], got {}",
            args.min_iou
        )));
    }
    let reg = Registry::builtin()?;
    let cfg = reg.resolve(&args.model)?;
    let device = parse_device(&args.device)?;
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => {
            let p = args.fixture.join("model.pt");
            if !p.is_file() {
                return Err(Error::Input(format!(
                    "{} has no model.pt: give the weights the video fixture was made with (--weights)",
                    args.fixture.display()
                )));
            }
            p
        }
    };
    let t0 = Instant::now();
    let overrides = args.fixture.join("weight_overrides.safetensors");
    let overrides = overrides.is_file().then_some(overrides);
    if let Some(o) = &overrides {
        println!(
            "weights: {} with the fixture's {}",
            weights.display(),
            o.display()
        );
    }
    let vb = parity::load_weights(&weights, overrides.as_deref(), &cfg, &device)?;
    let (vb, model_opts) = prepare(args, switches, vb)?;
    let frames = args.frames.as_ref().unwrap_or(&args.fixture);
    let runs = if parity::is_multi_object_fixture(&args.fixture)? {
        parity::run_multi_object(
            &cfg,
            vb,
            &args.fixture,
            frames,
            &device,
            &model_opts,
            batching,
        )?
    } else {
        parity::run_tracking_with_frames(&cfg, vb, &args.fixture, frames, &device, &model_opts)?
    };
    if let Some(s) = conv_summary(&model_opts.conv_tuner) {
        println!("{s}");
    }
    let secs = t0.elapsed().as_secs_f64();
    print_runs(&runs, args);
    let mut bad = Vec::new();
    for run in &runs {
        if run.prompt_iou < args.min_iou {
            bad.push(format!("{} prompt IoU {:.5}", run.run, run.prompt_iou));
        }
        // NaN fails too
        if run.low_res_rel_l2_all.is_nan() || run.low_res_rel_l2_all > args.track_tolerance {
            bad.push(format!(
                "{} all-frames rel L2 {:.3e}",
                run.run, run.low_res_rel_l2_all
            ));
        }
        for f in run.frames.iter().filter(|f| !frame_ok(f, args)) {
            bad.push(format!("{} object {} frame {}", f.run, f.obj_id, f.frame));
        }
    }
    println!(
        "{} runs tracked in {secs:.1} s on {} ({})",
        runs.len(),
        args.device,
        cfg.name
    );
    if let Some(path) = &args.json {
        let mut v = header;
        v["model"] = json!(cfg.name);
        v["weights"] = json!(weights.display().to_string());
        v["seconds"] = json!(secs);
        v["track_tolerance"] = json!(args.track_tolerance);
        v["min_iou"] = json!(args.min_iou);
        v["runs"] = runs
            .iter()
            .map(|r| {
                json!({
                    "run": r.run,
                    "prompt_frame": r.prompt_frame,
                    "prompt_iou": num(r.prompt_iou),
                    "low_res_rel_l2_all": num(r.low_res_rel_l2_all),
                    "frames": r.frames.iter().map(|f| json!({
                        "obj_id": f.obj_id,
                        "frame": f.frame,
                        "low_res_rel_l2": num(f.low_res_rel_l2),
                        "iou": num(f.iou),
                        "ref_fg_fraction": num(f.ref_fg_fraction),
                        "object_score": num(f.object_score as f64),
                        "ref_object_score": num(f.ref_object_score as f64),
                        "obj_ptr_rel_l2": num(f.obj_ptr_rel_l2),
                        "ok": frame_ok(f, args),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        v["failures"] = json!(bad);
        v["pass"] = json!(bad.is_empty());
        write_json(path, &v)?;
    }
    if !bad.is_empty() {
        return Err(Error::Other(format!(
            "tracking parity failed: {}",
            bad.join("; ")
        )));
    }
    Ok(())
}

pub fn run(args: Args, switches: &EnvSwitches) -> Result<()> {
    check_tolerance(args.tolerance, "--tolerance")?;
    if !args.fixture.is_dir() {
        return Err(Error::Input(format!(
            "fixture folder {} does not exist",
            args.fixture.display()
        )));
    }
    let header = json!({
        "fixture": args.fixture.display().to_string(),
        "device": args.device,
        "tolerance": args.tolerance,
        "tracking": args.tracking,
        "precision": args.precision,
        "tf32": args.tf32,
        "cudnn_tuning": args.enable_cudnn_tuning,
        "workspace_mb": args.workspace_mb,
        "object_batching": args.object_batching,
        "vosbench": env!("CARGO_PKG_VERSION"),
    });
    if args.precision != "f32" && !args.tracking {
        return Err(Error::Input(
            "--precision applies to --tracking runs (stage fixtures are compared in f32)".into(),
        ));
    }
    if args.tracking {
        run_tracking_cmd(&args, switches, header)
    } else {
        run_stages_cmd(&args, switches, header)
    }
}
