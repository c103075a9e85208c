//! The HuggingFace-transformers layout of the same checkpoints (`facebook/sam2.1-hiera-*`,
//! `facebook/EdgeTAM`), mapped back to the original key names.
//!
//! transformers builds its files from the original ones with a rename table plus a few
//! pattern rules (`convert_sam2_video_to_hf.py`, `convert_edgetam_video_to_hf.py`), applied in a
//! fixed order with substring semantics, and it reshapes three kinds of tensors: the four point
//! embeddings become one `[4, C]` tensor, the prompt encoder's gaussian matrix is also stored as
//! `shared_image_embedding.positional_embedding`, and EdgeTAM's perceiver `to_kv` is split into
//! `k_proj` and `v_proj`. Rather than hand-write an inverse, [`original_to_hf`] reproduces the
//! forward renaming key by key, and [`hf_to_original`] inverts it over the variant's own spec, so the
//! inverse is exact for every key the variant has.

use crate::config::{ModelConfig, TrunkConfig};
use crate::error::{Error, Result};
use crate::weights::spec::TensorSpec;
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// Which key layout a state dict uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// The facebookresearch code's own names (`image_encoder.trunk...`).
    Original,
    /// transformers' `Sam2VideoModel` / `EdgeTamVideoModel` names (`vision_encoder.backbone...`).
    Hf,
}

impl KeyLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyLayout::Original => "original",
            KeyLayout::Hf => "hf",
        }
    }
}

/// Tell the layouts apart by their top-level module names.
pub fn detect_layout<'a>(names: impl IntoIterator<Item = &'a str>) -> KeyLayout {
    let mut hf = false;
    for n in names {
        if n.starts_with("image_encoder.")
            || n.starts_with("sam_prompt_encoder.")
            || n.starts_with("sam_mask_decoder.")
        {
            return KeyLayout::Original;
        }
        if n.starts_with("vision_encoder.")
            || n.starts_with("prompt_encoder.")
            || n.starts_with("mask_decoder.")
        {
            hf = true;
        }
    }
    if hf {
        KeyLayout::Hf
    } else {
        KeyLayout::Original
    }
}

/// Plain substring renames, applied in this order to every key (both families).
const RENAMES: &[(&str, &str)] = &[
    (
        "iou_prediction_head.layers.0",
        "iou_prediction_head.proj_in",
    ),
    (
        "iou_prediction_head.layers.1",
        "iou_prediction_head.layers.0",
    ),
    (
        "iou_prediction_head.layers.2",
        "iou_prediction_head.proj_out",
    ),
    (
        "mask_decoder.output_upscaling.0",
        "mask_decoder.upscale_conv1",
    ),
    (
        "mask_decoder.output_upscaling.1",
        "mask_decoder.upscale_layer_norm",
    ),
    (
        "mask_decoder.output_upscaling.3",
        "mask_decoder.upscale_conv2",
    ),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("dwconv", "depthwise_conv"),
    ("pwconv", "pointwise_conv"),
    ("fuser", "memory_fuser"),
    ("point_embeddings", "point_embed"),
    (
        "pe_layer.positional_encoding_gaussian_matrix",
        "shared_embedding.positional_embedding",
    ),
    (
        "obj_ptr_tpos_proj",
        "temporal_positional_encoding_projection_layer",
    ),
    (
        "no_obj_embed_spatial",
        "occlusion_spatial_embedding_parameter",
    ),
    ("sam_prompt_encoder", "prompt_encoder"),
    ("sam_mask_decoder", "mask_decoder"),
    ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    ("gamma", "scale"),
    ("image_encoder.neck", "vision_encoder.neck"),
    ("image_encoder", "vision_encoder.backbone"),
    ("neck.0", "neck.conv1"),
    ("neck.1", "neck.layer_norm1"),
    ("neck.2", "neck.conv2"),
    ("neck.3", "neck.layer_norm2"),
    ("pix_feat_proj", "feature_projection"),
    ("patch_embed.proj", "patch_embed.projection"),
    ("no_mem_embed", "no_memory_embedding"),
    ("no_mem_pos_enc", "no_memory_positional_encoding"),
    ("obj_ptr", "object_pointer"),
    (".norm", ".layer_norm"),
    ("trunk.", ""),
    ("out_proj", "o_proj"),
];

/// EdgeTAM's extra renames, applied after [`RENAMES`].
const EDGETAM_RENAMES: &[(&str, &str)] = &[
    ("body.", "timm_model."),
    ("ff.0", "mlp.layer_norm"),
    ("ff.1", "mlp.up_proj"),
    ("ff.3", "mlp.down_proj"),
];

/// EdgeTAM perceiver rules: `(prefix after "spatial_perceiver.layers.N.", replacement)`.
const PERCEIVER_LAYER_RULES: &[(&str, &str)] = &[
    ("attn.layer_norm_x", "layer_norm_input"),
    ("attn.layer_norm_latents", "layer_norm_latents"),
    ("self_attn.layer_norm", "layer_norm_self"),
    ("attn.to_q", "cross_attention.q_proj"),
    ("attn.to_kv", "cross_attention.kv_proj_combined"),
    ("attn.to_out", "cross_attention.o_proj"),
    ("self_attn.to_q", "self_attention.q_proj"),
    ("self_attn.to_kv", "self_attention.kv_proj_combined"),
    ("self_attn.to_out", "self_attention.o_proj"),
    ("attn", "cross_attention"),
    ("self_attn", "self_attention"),
];

/// `prefix.(\d+).rest` at the start of `key`: (number, rest).
fn numbered<'a>(key: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let tail = key.strip_prefix(prefix)?;
    let digits = tail.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n = tail[..digits].parse().ok()?;
    Some((n, &tail[digits..]))
}

/// `prefix.(\d+).<any>.(\d+)` where the second number follows `mid`: (first, second).
fn two_numbers(key: &str, prefix: &str, mid: &str) -> Option<(usize, usize)> {
    let (a, rest) = numbered(key, prefix)?;
    let (b, _) = numbered(rest, mid)?;
    Some((a, b))
}

/// The 3-layer MLP renaming used for the score head, hypernetworks and object-pointer projection.
fn mlp3(key: String, layer: usize) -> String {
    match layer {
        0 => key.replace("layers.0", "proj_in"),
        1 => key.replace("layers.1", "layers.0"),
        2 => key.replace("layers.2", "proj_out"),
        _ => key,
    }
}

/// The transformers name(s) of one original key; two names where transformers splits the tensor
/// (EdgeTAM perceiver `to_kv` -> `k_proj`, `v_proj`, each half of dim 0).
pub fn original_to_hf(orig: &str, edgetam: bool) -> Vec<String> {
    let mut k = orig.to_string();
    for (a, b) in RENAMES {
        if k.contains(a) {
            k = k.replace(a, b);
        }
    }
    if edgetam {
        for (a, b) in EDGETAM_RENAMES {
            if k.contains(a) {
                k = k.replace(a, b);
            }
        }
        if k.starts_with("spatial_perceiver.latents") {
            k = k.replacen(
                "spatial_perceiver.latents",
                "spatial_perceiver.latents_1d",
                1,
            );
        }
        if k.starts_with("spatial_perceiver.latents_1d_2d") {
            k = k.replacen(
                "spatial_perceiver.latents_1d_2d",
                "spatial_perceiver.latents_2d",
                1,
            );
        }
        for (pat, rep) in PERCEIVER_LAYER_RULES {
            if let Some((n, rest)) = numbered(&k, "spatial_perceiver.layers.") {
                if let Some(after) = rest.strip_prefix('.').and_then(|r| r.strip_prefix(pat)) {
                    k = format!("spatial_perceiver.layers.{n}.{rep}{after}");
                }
            }
        }
    }
    if let Some((_, l)) = two_numbers(&k, "vision_encoder.backbone.blocks.", ".mlp.layers.") {
        match l {
            0 => k = k.replace("layers.0", "proj_in"),
            1 => k = k.replace("layers.1", "proj_out"),
            _ => {}
        }
    }
    if edgetam && k.starts_with("memory_attention") {
        k = k
            .replace("linear1", "mlp.up_proj")
            .replace("linear2", "mlp.down_proj");
    }
    if let Some((_, l)) = two_numbers(&k, "mask_decoder.transformer.layers.", ".mlp.layers.") {
        match l {
            0 => k = k.replace("mlp.layers.0", "mlp.proj_in"),
            1 => k = k.replace("mlp.layers.1", "mlp.proj_out"),
            _ => {}
        }
    }
    if let Some((l, _)) = numbered(&k, "mask_decoder.pred_obj_score_head.layers.") {
        k = mlp3(k, l);
    }
    if let Some(pos) = k.find(".output_hypernetworks_mlps.") {
        if pos > 0 {
            let tail = k[pos..].to_string();
            if let Some((_, l)) = two_numbers(&tail, ".output_hypernetworks_mlps.", ".layers.") {
                k = mlp3(k, l);
            }
        }
    }
    if numbered(&k, "vision_encoder.neck.convs.").is_some_and(|(_, r)| r.starts_with(".conv")) {
        k = k.replace(".conv.", ".");
    }
    if k.starts_with("memory_encoder.o_proj") {
        k = k.replace(".o_proj.", ".projection.");
    }
    if let Some((l, _)) = numbered(&k, "object_pointer_proj.layers.") {
        k = mlp3(k, l);
    }
    if let Some((l, _)) = numbered(&k, "memory_encoder.mask_downsampler.encoder.") {
        let from = format!("encoder.{l}");
        if l == 12 {
            k = k.replace(&from, "final_conv");
        } else if l % 3 == 0 {
            k = k.replace(&from, &format!("layers.{}.conv", l / 3));
        } else if l % 3 == 1 {
            k = k.replace(&from, &format!("layers.{}.layer_norm", l / 3));
        }
    }
    if k.contains("kv_proj_combined") {
        return vec![
            k.replace("kv_proj_combined", "k_proj"),
            k.replace("kv_proj_combined", "v_proj"),
        ];
    }
    vec![k]
}

/// Whether the variant uses EdgeTAM's conversion rules.
pub fn is_edgetam(cfg: &ModelConfig) -> bool {
    matches!(cfg.image_encoder.trunk, TrunkConfig::Repvit(_)) || cfg.spatial_perceiver.is_some()
}

const POINT_EMBED_HF: &str = "prompt_encoder.point_embed.weight";
const GAUSSIAN_HF: &str = "prompt_encoder.shared_embedding.positional_embedding";
const GAUSSIAN_SHARED_HF: &str = "shared_image_embedding.positional_embedding";

/// Rename (and re-join) a transformers-layout state dict to the original names of `specs`.
/// Tensors the variant has no use for keep their transformers names, so validation lists them as
/// unexpected; keys the file lacks are simply absent, so validation lists them as missing.
pub fn hf_to_original(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    specs: &[TensorSpec],
    edgetam: bool,
) -> Result<Vec<(String, Tensor)>> {
    let mut by_name: HashMap<String, Tensor> = HashMap::with_capacity(tensors.len());
    for (n, t) in tensors {
        by_name.insert(n, t);
    }
    let err =
        |e: candle_core::Error| Error::checkpoint(path, format!("cannot regroup HF tensors: {e}"));
    let mut out = Vec::with_capacity(specs.len());
    for s in specs {
        if let Some(i) = s
            .name
            .strip_prefix("sam_prompt_encoder.point_embeddings.")
            .and_then(|r| r.strip_suffix(".weight"))
            .and_then(|i| i.parse::<usize>().ok())
        {
            if let Some(all) = by_name.get(POINT_EMBED_HF) {
                if all.rank() == 2 && i < all.dim(0).map_err(err)? {
                    out.push((
                        s.name.clone(),
                        all.narrow(0, i, 1)
                            .map_err(err)?
                            .contiguous()
                            .map_err(err)?,
                    ));
                }
            }
            continue;
        }
        if s.name == "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" {
            let t = by_name.remove(GAUSSIAN_HF);
            let shared = by_name.remove(GAUSSIAN_SHARED_HF);
            if let Some(t) = t.or(shared) {
                out.push((s.name.clone(), t));
            }
            continue;
        }
        let hf = original_to_hf(&s.name, edgetam);
        match hf.as_slice() {
            [one] => {
                if let Some(t) = by_name.remove(one) {
                    out.push((s.name.clone(), t));
                }
            }
            [k, v] => {
                if let (Some(kt), Some(vt)) = (by_name.get(k), by_name.get(v)) {
                    let joined = Tensor::cat(&[kt, vt], 0).map_err(err)?;
                    out.push((s.name.clone(), joined));
                    by_name.remove(k);
                    by_name.remove(v);
                }
            }
            _ => {}
        }
    }
    by_name.remove(POINT_EMBED_HF);
    let mut rest: Vec<(String, Tensor)> = by_name.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(rest);
    Ok(out)
}

/// The inverse direction, for tests and for users who want to check a mapping: original-layout
/// tensors to the transformers layout, joined and split the way transformers does it.
pub fn original_to_hf_tensors(
    tensors: &[(String, Tensor)],
    edgetam: bool,
) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    let mut points: Vec<(usize, Tensor)> = Vec::new();
    for (n, t) in tensors {
        if let Some(i) = n
            .strip_prefix("sam_prompt_encoder.point_embeddings.")
            .and_then(|r| r.strip_suffix(".weight"))
            .and_then(|i| i.parse::<usize>().ok())
        {
            points.push((i, t.clone()));
            continue;
        }
        let hf = original_to_hf(n, edgetam);
        match hf.as_slice() {
            [k, v] => {
                let half = t.dim(0)? / 2;
                out.push((k.clone(), t.narrow(0, 0, half)?.contiguous()?));
                out.push((v.clone(), t.narrow(0, half, half)?.contiguous()?));
            }
            _ => {
                for h in hf {
                    if h == GAUSSIAN_HF {
                        out.push((GAUSSIAN_SHARED_HF.to_string(), t.clone()));
                    }
                    out.push((h, t.clone()));
                }
            }
        }
    }
    if !points.is_empty() {
        points.sort_by_key(|p| p.0);
        let ts: Vec<Tensor> = points.into_iter().map(|p| p.1).collect();
        out.push((POINT_EMBED_HF.to_string(), Tensor::cat(&ts, 0)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Registry;
    use crate::weights::spec::expected_tensors;
    use std::collections::HashSet;

    fn hf(k: &str, e: bool) -> String {
        let v = original_to_hf(k, e);
        assert_eq!(v.len(), 1, "{k}");
        v[0].clone()
    }

    #[test]
    fn known_renames_follow_the_transformers_rules() {
        let cases = [
            (
                "image_encoder.trunk.blocks.3.mlp.layers.0.weight",
                "vision_encoder.backbone.blocks.3.mlp.proj_in.weight",
            ),
            (
                "image_encoder.trunk.blocks.3.norm1.weight",
                "vision_encoder.backbone.blocks.3.layer_norm1.weight",
            ),
            (
                "image_encoder.trunk.patch_embed.proj.bias",
                "vision_encoder.backbone.patch_embed.projection.bias",
            ),
            (
                "image_encoder.neck.convs.2.conv.weight",
                "vision_encoder.neck.convs.2.weight",
            ),
            (
                "memory_encoder.out_proj.weight",
                "memory_encoder.projection.weight",
            ),
            (
                "memory_encoder.mask_downsampler.encoder.12.bias",
                "memory_encoder.mask_downsampler.final_conv.bias",
            ),
            (
                "memory_encoder.mask_downsampler.encoder.9.weight",
                "memory_encoder.mask_downsampler.layers.3.conv.weight",
            ),
            (
                "memory_encoder.mask_downsampler.encoder.4.bias",
                "memory_encoder.mask_downsampler.layers.1.layer_norm.bias",
            ),
            (
                "memory_encoder.fuser.layers.1.gamma",
                "memory_encoder.memory_fuser.layers.1.scale",
            ),
            (
                "memory_encoder.fuser.layers.0.dwconv.weight",
                "memory_encoder.memory_fuser.layers.0.depthwise_conv.weight",
            ),
            (
                "memory_attention.layers.1.cross_attn_image.out_proj.weight",
                "memory_attention.layers.1.cross_attn_image.o_proj.weight",
            ),
            (
                "memory_attention.norm.bias",
                "memory_attention.layer_norm.bias",
            ),
            (
                "sam_mask_decoder.iou_prediction_head.layers.1.weight",
                "mask_decoder.iou_prediction_head.layers.0.weight",
            ),
            (
                "sam_mask_decoder.output_hypernetworks_mlps.2.layers.2.bias",
                "mask_decoder.output_hypernetworks_mlps.2.proj_out.bias",
            ),
            (
                "sam_mask_decoder.pred_obj_score_head.layers.0.weight",
                "mask_decoder.pred_obj_score_head.proj_in.weight",
            ),
            (
                "sam_mask_decoder.transformer.layers.1.mlp.layers.1.weight",
                "mask_decoder.transformer.layers.1.mlp.proj_out.weight",
            ),
            (
                "sam_mask_decoder.transformer.norm_final_attn.weight",
                "mask_decoder.transformer.layer_norm_final_attn.weight",
            ),
            (
                "sam_mask_decoder.output_upscaling.1.weight",
                "mask_decoder.upscale_layer_norm.weight",
            ),
            (
                "sam_prompt_encoder.mask_downscaling.4.bias",
                "prompt_encoder.mask_embed.layer_norm2.bias",
            ),
            (
                "obj_ptr_proj.layers.2.weight",
                "object_pointer_proj.proj_out.weight",
            ),
            (
                "obj_ptr_tpos_proj.weight",
                "temporal_positional_encoding_projection_layer.weight",
            ),
            ("no_obj_ptr", "no_object_pointer"),
            (
                "no_obj_embed_spatial",
                "occlusion_spatial_embedding_parameter",
            ),
            ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
            ("no_mem_pos_enc", "no_memory_positional_encoding"),
        ];
        for (o, h) in cases {
            assert_eq!(hf(o, false), h, "{o}");
        }
        let e = [
            (
                "image_encoder.trunk.body.stem.conv1.bn.num_batches_tracked",
                "vision_encoder.backbone.timm_model.stem.conv1.bn.num_batches_tracked",
            ),
            (
                "memory_attention.layers.0.linear2.weight",
                "memory_attention.layers.0.mlp.down_proj.weight",
            ),
            ("spatial_perceiver.latents", "spatial_perceiver.latents_1d"),
            (
                "spatial_perceiver.latents_2d",
                "spatial_perceiver.latents_2d",
            ),
            (
                "spatial_perceiver.layers.1.attn.norm_x.weight",
                "spatial_perceiver.layers.1.layer_norm_input.weight",
            ),
            (
                "spatial_perceiver.layers.0.self_attn.norm.bias",
                "spatial_perceiver.layers.0.layer_norm_self.bias",
            ),
            (
                "spatial_perceiver.layers.0.self_attn.to_out.weight",
                "spatial_perceiver.layers.0.self_attention.o_proj.weight",
            ),
            (
                "spatial_perceiver.layers.0.self_ff.1.weight",
                "spatial_perceiver.layers.0.self_mlp.up_proj.weight",
            ),
            (
                "spatial_perceiver.layers.0.ff.0.bias",
                "spatial_perceiver.layers.0.mlp.layer_norm.bias",
            ),
            (
                "spatial_perceiver.norm.weight",
                "spatial_perceiver.layer_norm.weight",
            ),
        ];
        for (o, h) in e {
            assert_eq!(hf(o, true), h, "{o}");
        }
        assert_eq!(
            original_to_hf("spatial_perceiver.layers.1.attn.to_kv.weight", true),
            [
                "spatial_perceiver.layers.1.cross_attention.k_proj.weight",
                "spatial_perceiver.layers.1.cross_attention.v_proj.weight"
            ]
        );
    }

    /// The mapping must be one-to-one over every variant's keys, or the inverse would be ambiguous.
    #[test]
    fn renaming_is_injective_for_every_variant() {
        let reg = Registry::builtin().unwrap();
        for cfg in reg.models() {
            let e = is_edgetam(cfg);
            let mut seen = HashSet::new();
            for s in expected_tensors(cfg).unwrap() {
                for h in original_to_hf(&s.name, e) {
                    assert!(
                        seen.insert(h.clone()),
                        "{}: {} collides at {h}",
                        cfg.name,
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn round_trip_through_hf_layout_is_exact() {
        let reg = Registry::builtin().unwrap();
        for name in ["sam2.1_hiera_tiny", "edgetam"] {
            let cfg = reg.resolve(name).unwrap();
            let e = is_edgetam(&cfg);
            let specs = expected_tensors(&cfg).unwrap();
            // Small distinct values per tensor, in the spec's shapes.
            let orig: Vec<(String, Tensor)> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let n = s.numel();
                    let t = if s.integer {
                        Tensor::new(i as i64, &candle_core::Device::Cpu).unwrap()
                    } else {
                        Tensor::arange(i as f32, (i + n) as f32, &candle_core::Device::Cpu)
                            .unwrap()
                            .reshape(s.shape.as_slice())
                            .unwrap()
                    };
                    (s.name.clone(), t)
                })
                .collect();
            let hf_t = original_to_hf_tensors(&orig, e).unwrap();
            assert_eq!(
                detect_layout(hf_t.iter().map(|(n, _)| n.as_str())),
                KeyLayout::Hf
            );
            let back = hf_to_original(Path::new("x"), hf_t, &specs, e).unwrap();
            let back: HashMap<_, _> = back.into_iter().collect();
            assert_eq!(back.len(), orig.len(), "{name}");
            for (n, t) in &orig {
                let b = back.get(n).unwrap_or_else(|| panic!("{name}: {n} lost"));
                assert_eq!(b.dims(), t.dims(), "{n}");
                let values = |x: &Tensor| {
                    let x = x.to_dtype(candle_core::DType::F64).unwrap();
                    x.flatten_all().unwrap().to_vec1::<f64>().unwrap()
                };
                assert_eq!(values(b), values(t), "{n}: moved, not changed");
            }
        }
    }
}
