//! `vosbench info`: a variant's configuration, parameter count and checkpoint status; with
//! `--flops`, the FLOPs of one tracked frame (`flops.rs`).

pub mod flops;

use crate::config::{ModelConfig, Registry, TrunkConfig};
use crate::weights::hub::{converted_path, manual_url, original_path, status, Status};
use crate::weights::spec::{expected_tensors, param_count, TensorKind};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(after_help = "With no MODEL, prints a table of the five released variants.")]
pub struct Args {
    /// Variants or aliases (e.g. sam2.1_hiera_tiny, sam2_base, edgetam), or variant JSON files.
    pub models: Vec<String>,
    /// Folder with the checkpoints.
    #[arg(long, default_value = "weights")]
    pub weights_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Count the FLOPs of one steady tracked frame of each variant (seeded random weights, a
    /// synthetic video, run eagerly on --device) instead of describing it.
    #[arg(long)]
    pub flops: bool,
    /// With --flops: the device to run on (cpu, cuda, cuda:N).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// With --flops: input side instead of the variant's.
    #[arg(long)]
    pub imgsz: Option<usize>,
}

fn trunk_summary(cfg: &ModelConfig) -> String {
    match &cfg.image_encoder.trunk {
        TrunkConfig::Hiera(h) => format!(
            "Hiera, embed {} , {} heads, stages {:?}, global blocks {:?}, windows {:?}",
            h.embed_dim, h.num_heads, h.stages, h.global_att_blocks, h.window_spec
        )
        .replace(" ,", ","),
        TrunkConfig::Repvit(r) => format!(
            "RepViT {} (timm), dims {:?}, depths {:?}",
            r.timm_name, r.embed_dims, r.depths
        ),
    }
}

fn trunk_name(cfg: &ModelConfig) -> &'static str {
    match &cfg.image_encoder.trunk {
        TrunkConfig::Hiera(_) => "Hiera",
        TrunkConfig::Repvit(_) => "RepViT",
    }
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Missing => "missing".into(),
        Status::OriginalOnly(p) => format!(
            "original only ({}; `vosbench fetch` converts it)",
            p.display()
        ),
        Status::Converted(p, i) => format!(
            "converted and valid ({}, {}, from {} layout)",
            p.display(),
            i.dtype,
            i.source
        ),
        Status::Invalid(p, why) => format!("invalid ({}: {why})", p.display()),
    }
}

fn describe(cfg: &ModelConfig, dir: &Path) -> crate::Result<serde_json::Value> {
    let specs = expected_tensors(cfg)?;
    let params = param_count(&specs);
    let buffers = specs
        .iter()
        .filter(|t| t.kind == TensorKind::Buffer)
        .count();
    let st = status(dir, cfg);
    let ma = &cfg.memory_attention;
    Ok(json!({
        "name": cfg.name,
        "aliases": cfg.aliases,
        "trunk": trunk_summary(cfg),
        "image_size": cfg.image_size,
        "embedding_size": cfg.embedding_size(),
        "hidden_dim": cfg.hidden_dim(),
        "memory_dim": cfg.mem_dim(),
        "memory_attention_layers": ma.num_layers,
        "cross_attention": format!("{:?}", ma.cross_attention.kind),
        "num_maskmem": cfg.tracker.num_maskmem,
        "max_obj_ptrs": cfg.tracker.max_obj_ptrs_in_encoder,
        "spatial_perceiver": cfg.spatial_perceiver.as_ref().map(|p| json!({"latents_1d": p.num_latents, "latents_2d": p.num_latents_2d, "depth": p.depth})),
        "parameters": params,
        "expected_parameters": cfg.checkpoint.expected_params,
        "state_dict_keys": specs.len(),
        "buffers": buffers,
        "hub": match (&cfg.checkpoint.hub_repo, &cfg.checkpoint.hub_file) {
            (Some(r), Some(f)) => json!(format!("{r}/{f}")),
            _ => serde_json::Value::Null,
        },
        "download_url": manual_url(cfg),
        "converted_path": converted_path(dir, cfg),
        "original_path": original_path(dir, cfg),
        "status": st.label(),
        "status_detail": status_text(&st),
    }))
}

pub fn run(args: Args) -> crate::Result<()> {
    let registry = Registry::builtin()?;
    let cfgs: Vec<ModelConfig> = if args.models.is_empty() {
        registry
            .models()
            .iter()
            .filter(|m| !m.test_only)
            .cloned()
            .collect()
    } else {
        args.models
            .iter()
            .map(|m| registry.resolve(m))
            .collect::<crate::Result<_>>()?
    };
    if args.flops {
        let device = crate::cli::common::parse_device(&args.device)?;
        let mut rows = Vec::new();
        for c in &cfgs {
            let c = match args.imgsz {
                Some(s) => c.clone().with_image_size(s)?,
                None => c.clone(),
            };
            rows.push(flops::count(&c, &device)?);
        }
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&rows)
                    .map_err(|e| crate::Error::Other(e.to_string()))?
            );
        } else {
            print!("{}", flops::render(&rows));
        }
        return Ok(());
    }
    let infos = cfgs
        .iter()
        .map(|c| describe(c, &args.weights_dir))
        .collect::<crate::Result<Vec<_>>>()?;
    if args.json {
        let out = if args.models.len() == 1 {
            infos[0].clone()
        } else {
            serde_json::Value::Array(infos)
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| crate::Error::Other(e.to_string()))?
        );
        return Ok(());
    }
    if args.models.is_empty() {
        println!(
            "{:<24} {:<7} {:>12} {:>6}  checkpoint ({})",
            "variant",
            "trunk",
            "parameters",
            "keys",
            args.weights_dir.display()
        );
        for (c, i) in cfgs.iter().zip(&infos) {
            println!(
                "{:<24} {:<7} {:>12} {:>6}  {}",
                c.name,
                trunk_name(c),
                i["parameters"].to_string(),
                i["state_dict_keys"].to_string(),
                i["status"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    for (n, i) in infos.iter().enumerate() {
        if n > 0 {
            println!();
        }
        let line = |k: &str, v: String| println!("  {k:<24} {v}");
        println!("{}", i["name"].as_str().unwrap_or(""));
        let s = |k: &str| match &i[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_string(),
            v => v.to_string(),
        };
        line("aliases", s("aliases"));
        line("trunk", s("trunk"));
        line(
            "image size",
            format!(
                "{} (embedding {}x{})",
                s("image_size"),
                s("embedding_size"),
                s("embedding_size")
            ),
        );
        line(
            "hidden / memory dim",
            format!("{} / {}", s("hidden_dim"), s("memory_dim")),
        );
        line(
            "memory attention",
            format!(
                "{} layers, cross-attention {}",
                s("memory_attention_layers"),
                s("cross_attention")
            ),
        );
        line(
            "memory bank",
            format!(
                "{} masks, {} object pointers",
                s("num_maskmem"),
                s("max_obj_ptrs")
            ),
        );
        line("spatial perceiver", s("spatial_perceiver"));
        line(
            "parameters",
            format!(
                "{} ({} state-dict keys, {} buffers)",
                s("parameters"),
                s("state_dict_keys"),
                s("buffers")
            ),
        );
        line("hub", s("hub"));
        line("download url", s("download_url"));
        line("checkpoint", s("status_detail"));
    }
    Ok(())
}
