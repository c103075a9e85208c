//! Model variant registry: one JSON file per variant under `models/` (and test-only variants under
//! `tests/models/`), deserialized into the config structs below. Every architectural number the
//! networks use comes from these files; the Rust code holds no per-variant constants.
//!
//! Field names follow the official hydra configs (`sam2/configs/sam2.1/*.yaml`,
//! `EdgeTAM:sam2/configs/edgetam.yaml`) so a reader can check one against the other.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub mod run;
pub use run::{
    FencePoint, FenceSet, FenceSpec, GraphMode, ObjectBatching, PostProcessing, Precision,
    ShardSpec,
};

/// The built-in variants, compiled into the binary so it runs from any directory.
const BUILTIN: &[(&str, &str)] = &[
    (
        "sam2.1_hiera_tiny",
        include_str!("../models/sam2.1_hiera_tiny.json"),
    ),
    (
        "sam2.1_hiera_small",
        include_str!("../models/sam2.1_hiera_small.json"),
    ),
    (
        "sam2.1_hiera_base_plus",
        include_str!("../models/sam2.1_hiera_base_plus.json"),
    ),
    (
        "sam2.1_hiera_large",
        include_str!("../models/sam2.1_hiera_large.json"),
    ),
    ("edgetam", include_str!("../models/edgetam.json")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Sam2,
    Edgetam,
}

/// One model variant: everything needed to build the network and find its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub family: Family,
    /// Names the original Python harness used (`sam2_base` = base_plus, ...).
    pub aliases: Vec<String>,
    /// Small variants used by the parity fixtures only.
    #[serde(default)]
    pub test_only: bool,
    pub checkpoint: CheckpointSource,
    /// Square input side of the network (1024 for the released models).
    pub image_size: usize,
    /// Stride of the embedding the SAM heads see (16: a 64x64 embedding at 1024).
    pub backbone_stride: usize,
    pub image_encoder: ImageEncoderConfig,
    pub memory_attention: MemoryAttentionConfig,
    pub memory_encoder: MemoryEncoderConfig,
    /// EdgeTAM only: the spatial perceiver that compresses each memory frame.
    pub spatial_perceiver: Option<PerceiverConfig>,
    pub prompt_encoder: PromptEncoderConfig,
    pub mask_decoder: MaskDecoderConfig,
    pub tracker: TrackerConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSource {
    /// HuggingFace hub repository that carries the original `.pt`.
    pub hub_repo: Option<String>,
    /// File name of the original checkpoint in that repository.
    pub hub_file: Option<String>,
    /// Direct download address of the original checkpoint, for users placing it by hand.
    pub url: Option<String>,
    /// Number of nn.Parameters of the official model (architecture.md §1.9).
    pub expected_params: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEncoderConfig {
    /// Number of lowest-resolution FPN levels dropped (1 for every released variant).
    pub scalp: usize,
    pub trunk: TrunkConfig,
    pub neck: NeckConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TrunkConfig {
    Hiera(HieraConfig),
    Repvit(RepVitConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HieraConfig {
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Blocks per stage.
    pub stages: Vec<usize>,
    pub global_att_blocks: Vec<usize>,
    /// Window size per stage (0 = global).
    pub window_spec: Vec<usize>,
    pub window_pos_embed_bkg_spatial_size: [usize; 2],
    /// Size of `pos_embed_window` (the tiled per-window embedding).
    pub window_pos_embed_size: [usize; 2],
    /// Number of stages whose first block max-pools q (stride `q_stride`).
    pub q_pool: usize,
    pub q_stride: [usize; 2],
    pub mlp_ratio: f64,
    pub dim_mul: f64,
    pub head_mul: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepVitConfig {
    pub timm_name: String,
    pub embed_dims: Vec<usize>,
    pub depths: Vec<usize>,
    pub mlp_ratio: f64,
    pub se_ratio: f64,
    pub kernel_size: usize,
    pub legacy: bool,
    pub bn_eps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeckConfig {
    pub d_model: usize,
    /// Trunk channels, lowest resolution first (the order of `convs.{0..3}`).
    pub backbone_channel_list: Vec<usize>,
    pub fpn_top_down_levels: Vec<usize>,
    pub fpn_interp_model: String,
    pub fuse_type: String,
    pub kernel_size: usize,
    pub pos_num_feats: usize,
    pub pos_temperature: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryAttentionConfig {
    pub d_model: usize,
    pub num_layers: usize,
    pub pos_enc_at_input: bool,
    pub dim_feedforward: usize,
    pub pos_enc_at_attn: bool,
    pub pos_enc_at_cross_attn_keys: bool,
    pub pos_enc_at_cross_attn_queries: bool,
    pub self_attention: RopeAttentionConfig,
    pub cross_attention: RopeAttentionConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeKind {
    /// `RoPEAttention`: axial RoPE on one grid, keys tiled per memory frame.
    Rope,
    /// EdgeTAM's `RoPEAttentionv2`: separate query and key grids, RoPE on the 2D latents only.
    RopeV2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RopeAttentionConfig {
    pub kind: RopeKind,
    pub rope_theta: f64,
    /// Grid of `RoPEAttention` (recomputed from the token count at run time when it differs).
    #[serde(default)]
    pub feat_sizes: Option<[usize; 2]>,
    #[serde(default)]
    pub rope_k_repeat: bool,
    /// `RoPEAttentionv2` query and key grids.
    #[serde(default)]
    pub q_sizes: Option<[usize; 2]>,
    #[serde(default)]
    pub k_sizes: Option<[usize; 2]>,
    pub num_heads: usize,
    pub downsample_rate: usize,
    /// Key/value input width when it differs from d_model (the memory width).
    #[serde(default)]
    pub kv_in_dim: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryEncoderConfig {
    pub in_dim: usize,
    pub out_dim: usize,
    pub pos_num_feats: usize,
    pub mask_downsampler: MaskDownSamplerConfig,
    pub fuser: FuserConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskDownSamplerConfig {
    pub embed_dim: usize,
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
    pub total_stride: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuserConfig {
    pub num_layers: usize,
    pub dim: usize,
    pub kernel_size: usize,
    pub padding: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceiverConfig {
    pub depth: usize,
    pub dim: usize,
    pub dim_head: usize,
    pub heads: usize,
    pub ff_mult: usize,
    pub num_latents: usize,
    pub num_latents_2d: usize,
    pub pos_enc_at_key_value: bool,
    pub concat_kv_latents: bool,
    pub use_self_attn: bool,
    pub pos_num_feats: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptEncoderConfig {
    pub mask_in_chans: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskDecoderConfig {
    pub num_multimask_outputs: usize,
    pub transformer_depth: usize,
    pub transformer_mlp_dim: usize,
    pub transformer_num_heads: usize,
    pub attention_downsample_rate: usize,
    pub iou_head_depth: usize,
    pub iou_head_hidden_dim: usize,
    pub dynamic_multimask_stability_delta: f64,
    pub dynamic_multimask_stability_thresh: f64,
}

/// The `SAM2Base` flags plus what `build_sam2_video_predictor` injects (architecture.md §1.4-1.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    pub num_maskmem: usize,
    pub sigmoid_scale_for_mem_enc: f64,
    pub sigmoid_bias_for_mem_enc: f64,
    pub use_mask_input_as_output_without_sam: bool,
    pub directly_add_no_mem_embed: bool,
    pub no_obj_embed_spatial: bool,
    pub use_high_res_features_in_sam: bool,
    pub multimask_output_in_sam: bool,
    pub iou_prediction_use_sigmoid: bool,
    pub use_obj_ptrs_in_encoder: bool,
    pub max_obj_ptrs_in_encoder: usize,
    pub add_tpos_enc_to_obj_ptrs: bool,
    pub proj_tpos_enc_in_obj_ptrs: bool,
    pub use_signed_tpos_enc_to_obj_ptrs: bool,
    pub only_obj_ptrs_in_the_past_for_eval: bool,
    pub pred_obj_scores: bool,
    pub pred_obj_scores_mlp: bool,
    pub fixed_no_obj_ptr: bool,
    pub soft_no_obj_ptr: bool,
    pub multimask_output_for_tracking: bool,
    pub use_multimask_token_for_obj_ptr: bool,
    pub multimask_min_pt_num: usize,
    pub multimask_max_pt_num: usize,
    pub use_mlp_for_obj_ptr_proj: bool,
    pub memory_temporal_stride_for_eval: usize,
    pub max_cond_frames_in_attn: i64,
    pub non_overlap_masks_for_mem_enc: bool,
    pub binarize_mask_from_pts_for_mem_enc: bool,
    pub fill_hole_area: usize,
    /// The official predictor stores memory features as bf16 (architecture.md §6.15).
    pub memory_features_bf16: bool,
}

impl ModelConfig {
    /// Parse a variant file.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))
    }

    /// Load a variant from a JSON file on disk.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Input(format!("cannot read model config {}: {e}", path.display()))
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Embedding side length the SAM heads see (64 at 1024).
    pub fn embedding_size(&self) -> usize {
        self.image_size / self.backbone_stride
    }

    /// Width of the SAM heads and of memory attention (`neck.d_model`).
    pub fn hidden_dim(&self) -> usize {
        self.image_encoder.neck.d_model
    }

    /// Width of stored memories (`memory_encoder.out_dim`).
    pub fn mem_dim(&self) -> usize {
        self.memory_encoder.out_dim
    }

    /// Hiera settings, or an error for a variant whose trunk is not Hiera.
    /// A copy that infers at `side` x `side`. Everything else derives its sizes from
    /// `image_size / backbone_stride` at run time, except EdgeTAM's `RoPEAttentionv2` query grid,
    /// which the variant files spell out and is recomputed here.
    pub fn with_image_size(&self, side: usize) -> Result<ModelConfig> {
        // Every trunk downsamples by 32 overall; the heads work at side / backbone_stride.
        if side == 0 || !side.is_multiple_of(32) {
            return Err(Error::Input(format!(
                "--imgsz {side}: the image side must be a positive multiple of 32"
            )));
        }
        let e = side / self.backbone_stride;
        // EdgeTAM: the perceiver splits each memory frame's e x e grid into n x n square windows.
        if let Some(p) = &self.spatial_perceiver {
            let n = (p.num_latents_2d as f64).sqrt().round() as usize;
            if n > 0 && (e == 0 || !e.is_multiple_of(n)) {
                let step = self.backbone_stride * n;
                return Err(Error::Input(format!(
                    "--imgsz {side}: {} needs a side that is a multiple of {step} (its perceiver splits the side/{} memory grid into {n}x{n} windows)",
                    self.name, self.backbone_stride
                )));
            }
        }
        let mut c = self.clone();
        c.image_size = side;
        for att in [
            &mut c.memory_attention.self_attention,
            &mut c.memory_attention.cross_attention,
        ] {
            if att.kind == RopeKind::RopeV2 {
                att.q_sizes = Some([e, e]);
            }
        }
        Ok(c)
    }

    pub fn hiera(&self) -> Result<&HieraConfig> {
        match &self.image_encoder.trunk {
            TrunkConfig::Hiera(h) => Ok(h),
            _ => Err(Error::Config(format!("{} has no Hiera trunk", self.name))),
        }
    }
}

/// The set of known variants.
#[derive(Debug, Clone)]
pub struct Registry {
    models: Vec<ModelConfig>,
}

impl Registry {
    /// The five released variants.
    pub fn builtin() -> Result<Self> {
        let models = BUILTIN
            .iter()
            .map(|(name, text)| ModelConfig::from_json_str(text, &format!("models/{name}.json")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { models })
    }

    /// Every variant, in registry order.
    pub fn models(&self) -> &[ModelConfig] {
        &self.models
    }

    /// Add a variant (test-only variants, or a user's own JSON).
    pub fn add(&mut self, cfg: ModelConfig) {
        self.models.retain(|m| m.name != cfg.name);
        self.models.push(cfg);
    }

    /// Look a variant up by its name or one of its aliases. A path ending in `.json` loads that
    /// file instead.
    pub fn resolve(&self, name: &str) -> Result<ModelConfig> {
        if name.ends_with(".json") {
            return ModelConfig::from_file(Path::new(name));
        }
        self.models
            .iter()
            .find(|m| m.name == name || m.aliases.iter().any(|a| a == name))
            .cloned()
            .ok_or_else(|| {
                let known: Vec<_> = self.models.iter().map(|m| m.name.as_str()).collect();
                Error::Input(format!(
                    "unknown model '{name}' (known: {})",
                    known.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_variants_parse_and_resolve_aliases() {
        let reg = Registry::builtin().unwrap();
        assert_eq!(reg.models().len(), 5);
        assert_eq!(
            reg.resolve("sam2_base").unwrap().name,
            "sam2.1_hiera_base_plus"
        );
        assert_eq!(reg.resolve("sam2_tiny").unwrap().name, "sam2.1_hiera_tiny");
        assert_eq!(reg.resolve("edgetam").unwrap().family, Family::Edgetam);
        let err = reg.resolve("sam3").unwrap_err().to_string();
        assert!(err.contains("unknown model 'sam3'"), "{err}");
    }

    #[test]
    fn image_size_is_checked_per_variant() {
        let reg = Registry::builtin().unwrap();
        let edgetam = reg.resolve("edgetam").unwrap();
        for bad in [128, 288, 320, 500] {
            let e = edgetam.with_image_size(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            if bad.is_multiple_of(32) {
                assert!(
                    e.to_string()
                        .contains("edgetam needs a side that is a multiple of 256")
                        && e.to_string().contains("16x16 windows"),
                    "{e}"
                );
            }
        }
        for good in [256, 512, 768, 1024] {
            assert_eq!(edgetam.with_image_size(good).unwrap().image_size, good);
        }
        // Hiera has no window grid to split: any multiple of 32.
        let sam = reg.resolve("sam2.1_hiera_tiny").unwrap();
        assert!(sam.with_image_size(288).is_ok());
        assert!(sam.with_image_size(300).is_err());
    }

    #[test]
    fn test_variant_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/sam2.1_test.json");
        let cfg = ModelConfig::from_file(&p).unwrap();
        assert!(cfg.test_only);
        assert_eq!(cfg.embedding_size(), 16);
    }
}
