//! The exact state dict a variant's checkpoint holds, derived from its config alone.
//!
//! Every key and shape below mirrors the module tree of the official PyTorch code
//! (`sam2/modeling/*.py`, EdgeTAM's `perceiver.py`, timm's `repvit.py`), so a checkpoint can be
//! validated before a single tensor is used: missing keys, unexpected keys and wrong shapes are all
//! reported by name. Parameter counts (`TensorKind::Param` numels) reproduce architecture.md §1.9.

use crate::config::{
    HieraConfig, MaskDecoderConfig, MemoryAttentionConfig, MemoryEncoderConfig, ModelConfig,
    PerceiverConfig, RepVitConfig, RopeAttentionConfig, TrunkConfig,
};
use crate::error::{Error, Result};
use candle_core::DType;
use std::collections::{HashMap, HashSet};

/// Whether a tensor is an `nn.Parameter` or a registered buffer (both are in the state dict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    Param,
    Buffer,
}

/// One entry of the state dict a variant needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
    /// Stored as an integer (BatchNorm's `num_batches_tracked`, int64); every other tensor is float.
    pub integer: bool,
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Collects specs under a growing name prefix, like `VarBuilder::pp`.
struct Specs {
    out: Vec<TensorSpec>,
}

impl Specs {
    fn push(&mut self, name: String, shape: &[usize], kind: TensorKind, integer: bool) {
        self.out.push(TensorSpec {
            name,
            shape: shape.to_vec(),
            kind,
            integer,
        });
    }
    fn param(&mut self, name: impl Into<String>, shape: &[usize]) {
        self.push(name.into(), shape, TensorKind::Param, false);
    }
    fn buffer(&mut self, name: impl Into<String>, shape: &[usize]) {
        self.push(name.into(), shape, TensorKind::Buffer, false);
    }
    /// `nn.Linear(i, o)`: weight [o, i] (+ bias [o]).
    fn linear(&mut self, p: &str, i: usize, o: usize, bias: bool) {
        self.param(format!("{p}.weight"), &[o, i]);
        if bias {
            self.param(format!("{p}.bias"), &[o]);
        }
    }
    /// `nn.Conv2d(i, o, k, groups)`: weight [o, i/groups, k, k] (+ bias [o]).
    fn conv(&mut self, p: &str, i: usize, o: usize, k: usize, groups: usize, bias: bool) {
        self.param(format!("{p}.weight"), &[o, i / groups, k, k]);
        if bias {
            self.param(format!("{p}.bias"), &[o]);
        }
    }
    /// `nn.ConvTranspose2d(i, o, k)`: weight [i, o, k, k] + bias [o].
    fn conv_transpose(&mut self, p: &str, i: usize, o: usize, k: usize) {
        self.param(format!("{p}.weight"), &[i, o, k, k]);
        self.param(format!("{p}.bias"), &[o]);
    }
    /// `nn.LayerNorm(d)` / `LayerNorm2d(d)`: weight and bias [d].
    fn norm(&mut self, p: &str, d: usize) {
        self.param(format!("{p}.weight"), &[d]);
        self.param(format!("{p}.bias"), &[d]);
    }
    /// `nn.BatchNorm2d(d)`: affine params plus running stats and the int64 step counter.
    fn batch_norm(&mut self, p: &str, d: usize) {
        self.norm(p, d);
        self.buffer(format!("{p}.running_mean"), &[d]);
        self.buffer(format!("{p}.running_var"), &[d]);
        self.push(
            format!("{p}.num_batches_tracked"),
            &[],
            TensorKind::Buffer,
            true,
        );
    }
    /// `sam2_utils.MLP(input, hidden, output, num_layers)`: `layers.{i}` Linear with bias.
    fn mlp(&mut self, p: &str, input: usize, hidden: usize, output: usize, num_layers: usize) {
        for l in 0..num_layers {
            let i = if l == 0 { input } else { hidden };
            let o = if l + 1 == num_layers { output } else { hidden };
            self.linear(&format!("{p}.layers.{l}"), i, o, true);
        }
    }
    /// SAM's `Attention(d, heads, downsample_rate, kv_in_dim)`: q/k/v/out projections.
    fn sam_attention(&mut self, p: &str, d: usize, downsample_rate: usize, kv_in_dim: usize) {
        let internal = d / downsample_rate;
        self.linear(&format!("{p}.q_proj"), d, internal, true);
        self.linear(&format!("{p}.k_proj"), kv_in_dim, internal, true);
        self.linear(&format!("{p}.v_proj"), kv_in_dim, internal, true);
        self.linear(&format!("{p}.out_proj"), internal, d, true);
    }
}

fn cfg_err(cfg: &ModelConfig, msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {msg}", cfg.name))
}

fn scale(v: usize, f: f64) -> usize {
    // The official code does int(dim * dim_mul); the configs use exact multipliers.
    (v as f64 * f) as usize
}

/// Hiera stage ends and q-pool blocks (`hieradet.py`): the block index that closes each stage, and
/// the first block of each of the first `q_pool` later stages.
pub fn hiera_layout(h: &HieraConfig) -> (Vec<usize>, Vec<usize>) {
    let mut ends = Vec::with_capacity(h.stages.len());
    let mut acc = 0usize;
    for &n in &h.stages {
        acc += n;
        ends.push(acc.saturating_sub(1));
    }
    let q_pool_blocks: Vec<usize> = ends
        .iter()
        .take(ends.len().saturating_sub(1))
        .map(|e| e + 1)
        .take(h.q_pool)
        .collect();
    (ends, q_pool_blocks)
}

fn hiera(s: &mut Specs, cfg: &ModelConfig, h: &HieraConfig, p: &str) -> Result<Vec<usize>> {
    if h.stages.is_empty() || h.stages.contains(&0) {
        return Err(cfg_err(
            cfg,
            "hiera stages must be non-empty with at least one block each",
        ));
    }
    if h.window_spec.len() != h.stages.len() {
        return Err(cfg_err(cfg, "hiera window_spec needs one entry per stage"));
    }
    let c1 = h.embed_dim;
    let [bh, bw] = h.window_pos_embed_bkg_spatial_size;
    let [wh, ww] = h.window_pos_embed_size;
    s.param(format!("{p}.pos_embed"), &[1, c1, bh, bw]);
    s.param(format!("{p}.pos_embed_window"), &[1, c1, wh, ww]);
    s.conv(&format!("{p}.patch_embed.proj"), 3, c1, 7, 1, true);
    let (ends, _) = hiera_layout(h);
    let depth: usize = h.stages.iter().sum();
    let mut dim = h.embed_dim;
    let mut heads = h.num_heads;
    let mut stage_dims = vec![dim];
    for i in 0..depth {
        let mut dim_out = dim;
        if i > 0 && ends.contains(&(i - 1)) {
            dim_out = scale(dim, h.dim_mul);
            heads = scale(heads, h.head_mul);
            stage_dims.push(dim_out);
        }
        if heads == 0 || !dim_out.is_multiple_of(heads) {
            return Err(cfg_err(
                cfg,
                format!("hiera block {i}: dim {dim_out} not divisible by {heads} heads"),
            ));
        }
        let b = format!("{p}.blocks.{i}");
        s.norm(&format!("{b}.norm1"), dim);
        s.linear(&format!("{b}.attn.qkv"), dim, 3 * dim_out, true);
        s.linear(&format!("{b}.attn.proj"), dim_out, dim_out, true);
        s.norm(&format!("{b}.norm2"), dim_out);
        let hidden = scale(dim_out, h.mlp_ratio);
        s.mlp(&format!("{b}.mlp"), dim_out, hidden, dim_out, 2);
        if dim != dim_out {
            s.linear(&format!("{b}.proj"), dim, dim_out, true);
        }
        dim = dim_out;
    }
    Ok(stage_dims)
}

/// timm's `make_divisible(v, 8, round_limit=0)` as used by `SqueezeExcite`.
fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let new_v = ((v + d / 2.0) as usize / divisor) * divisor;
    new_v.max(divisor)
}

/// timm `ConvNorm`: conv `c` without bias, BatchNorm `bn`.
fn conv_norm(s: &mut Specs, p: &str, i: usize, o: usize, k: usize, groups: usize) {
    s.conv(&format!("{p}.c"), i, o, k, groups, false);
    s.batch_norm(&format!("{p}.bn"), o);
}

/// timm `RepViTBlock(dim, mlp_ratio, kernel_size, use_se, legacy)`.
fn repvit_block(s: &mut Specs, r: &RepVitConfig, p: &str, dim: usize, use_se: bool) {
    conv_norm(
        s,
        &format!("{p}.token_mixer.conv"),
        dim,
        dim,
        r.kernel_size,
        dim,
    );
    if r.legacy {
        conv_norm(s, &format!("{p}.token_mixer.conv1"), dim, dim, 1, dim);
    } else {
        s.conv(&format!("{p}.token_mixer.conv1"), dim, dim, 1, dim, true);
        s.batch_norm(&format!("{p}.token_mixer.bn"), dim);
    }
    if use_se {
        let rd = make_divisible(dim as f64 * r.se_ratio, 8);
        s.conv(&format!("{p}.se.fc1"), dim, rd, 1, 1, true);
        s.conv(&format!("{p}.se.fc2"), rd, dim, 1, 1, true);
    }
    let hidden = scale(dim, r.mlp_ratio);
    conv_norm(s, &format!("{p}.channel_mixer.conv1"), dim, hidden, 1, 1);
    conv_norm(s, &format!("{p}.channel_mixer.conv2"), hidden, dim, 1, 1);
}

/// timm `RepVit` as a `features_only` FeatureListNet (stage names flattened to `stages_{i}`).
fn repvit(s: &mut Specs, cfg: &ModelConfig, r: &RepVitConfig, p: &str) -> Result<Vec<usize>> {
    if r.embed_dims.is_empty() || r.embed_dims.len() != r.depths.len() {
        return Err(cfg_err(cfg, "repvit needs one depth per embed dim"));
    }
    let c0 = r.embed_dims[0];
    conv_norm(s, &format!("{p}.stem.conv1"), 3, c0 / 2, 3, 1);
    conv_norm(s, &format!("{p}.stem.conv2"), c0 / 2, c0, 3, 1);
    for (i, (&dim, &depth)) in r.embed_dims.iter().zip(&r.depths).enumerate() {
        let st = format!("{p}.stages_{i}");
        if i > 0 {
            let prev = r.embed_dims[i - 1];
            let d = format!("{st}.downsample");
            repvit_block(s, r, &format!("{d}.pre_block"), prev, false);
            conv_norm(
                s,
                &format!("{d}.spatial_downsample"),
                prev,
                prev,
                r.kernel_size,
                prev,
            );
            conv_norm(s, &format!("{d}.channel_downsample"), prev, dim, 1, 1);
            let hidden = scale(dim, r.mlp_ratio);
            conv_norm(s, &format!("{d}.ffn.conv1"), dim, hidden, 1, 1);
            conv_norm(s, &format!("{d}.ffn.conv2"), hidden, dim, 1, 1);
        }
        for b in 0..depth {
            repvit_block(s, r, &format!("{st}.blocks.{b}"), dim, b % 2 == 0);
        }
    }
    Ok(r.embed_dims.clone())
}

fn rope_attention(s: &mut Specs, p: &str, a: &RopeAttentionConfig, d: usize) {
    s.sam_attention(p, d, a.downsample_rate.max(1), a.kv_in_dim.unwrap_or(d));
}

fn memory_attention(s: &mut Specs, m: &MemoryAttentionConfig) {
    let d = m.d_model;
    for l in 0..m.num_layers {
        let p = format!("memory_attention.layers.{l}");
        rope_attention(s, &format!("{p}.self_attn"), &m.self_attention, d);
        rope_attention(s, &format!("{p}.cross_attn_image"), &m.cross_attention, d);
        s.linear(&format!("{p}.linear1"), d, m.dim_feedforward, true);
        s.linear(&format!("{p}.linear2"), m.dim_feedforward, d, true);
        for n in 1..=3 {
            s.norm(&format!("{p}.norm{n}"), d);
        }
    }
    s.norm("memory_attention.norm", d);
}

fn memory_encoder(s: &mut Specs, cfg: &ModelConfig, m: &MemoryEncoderConfig) -> Result<()> {
    let md = &m.mask_downsampler;
    if md.stride < 2 || md.total_stride < md.stride {
        return Err(cfg_err(
            cfg,
            "mask_downsampler stride must be >= 2 and <= total_stride",
        ));
    }
    // num_layers = log(total_stride) / log(stride), exact for the configs in use.
    let mut num_layers = 0usize;
    let mut acc = 1usize;
    while acc < md.total_stride {
        acc *= md.stride;
        num_layers += 1;
    }
    if acc != md.total_stride {
        return Err(cfg_err(
            cfg,
            "mask_downsampler total_stride must be a power of stride",
        ));
    }
    let p = "memory_encoder.mask_downsampler.encoder";
    let mut cin = 1usize;
    for l in 0..num_layers {
        let cout = cin * md.stride * md.stride;
        s.conv(
            &format!("{p}.{}", 3 * l),
            cin,
            cout,
            md.kernel_size,
            1,
            true,
        );
        s.norm(&format!("{p}.{}", 3 * l + 1), cout);
        cin = cout;
    }
    s.conv(
        &format!("{p}.{}", 3 * num_layers),
        cin,
        md.embed_dim,
        1,
        1,
        true,
    );
    s.conv(
        "memory_encoder.pix_feat_proj",
        m.in_dim,
        m.in_dim,
        1,
        1,
        true,
    );
    let f = &m.fuser;
    for l in 0..f.num_layers {
        let p = format!("memory_encoder.fuser.layers.{l}");
        s.param(format!("{p}.gamma"), &[f.dim]);
        s.conv(
            &format!("{p}.dwconv"),
            f.dim,
            f.dim,
            f.kernel_size,
            f.dim,
            true,
        );
        s.norm(&format!("{p}.norm"), f.dim);
        s.linear(&format!("{p}.pwconv1"), f.dim, 4 * f.dim, true);
        s.linear(&format!("{p}.pwconv2"), 4 * f.dim, f.dim, true);
    }
    if m.out_dim != m.in_dim {
        s.conv("memory_encoder.out_proj", m.in_dim, m.out_dim, 1, 1, true);
    }
    Ok(())
}

fn perceiver(s: &mut Specs, pc: &PerceiverConfig) {
    let p = "spatial_perceiver";
    let d = pc.dim;
    let inner = pc.dim_head * pc.heads;
    if pc.num_latents > 0 {
        s.param(format!("{p}.latents"), &[pc.num_latents, d]);
    }
    if pc.num_latents_2d > 0 {
        s.param(format!("{p}.latents_2d"), &[pc.num_latents_2d, d]);
    }
    let ff = |s: &mut Specs, q: &str| {
        s.norm(&format!("{q}.0"), d);
        s.linear(&format!("{q}.1"), d, d * pc.ff_mult, false);
        s.linear(&format!("{q}.3"), d * pc.ff_mult, d, false);
    };
    for l in 0..pc.depth {
        let q = format!("{p}.layers.{l}");
        s.norm(&format!("{q}.attn.norm_x"), d);
        s.norm(&format!("{q}.attn.norm_latents"), d);
        s.linear(&format!("{q}.attn.to_q"), d, inner, false);
        s.linear(&format!("{q}.attn.to_kv"), d, 2 * inner, false);
        s.linear(&format!("{q}.attn.to_out"), inner, d, false);
        ff(s, &format!("{q}.ff"));
        if pc.use_self_attn {
            s.norm(&format!("{q}.self_attn.norm"), d);
            s.linear(&format!("{q}.self_attn.to_q"), d, inner, false);
            s.linear(&format!("{q}.self_attn.to_kv"), d, 2 * inner, false);
            s.linear(&format!("{q}.self_attn.to_out"), inner, d, false);
            ff(s, &format!("{q}.self_ff"));
        }
    }
    s.norm(&format!("{p}.norm"), d);
}

fn prompt_encoder(s: &mut Specs, d: usize, mask_in_chans: usize) {
    let p = "sam_prompt_encoder";
    s.buffer(
        format!("{p}.pe_layer.positional_encoding_gaussian_matrix"),
        &[2, d / 2],
    );
    for i in 0..4 {
        s.param(format!("{p}.point_embeddings.{i}.weight"), &[1, d]);
    }
    s.param(format!("{p}.not_a_point_embed.weight"), &[1, d]);
    let q = mask_in_chans / 4;
    s.conv(&format!("{p}.mask_downscaling.0"), 1, q, 2, 1, true);
    s.norm(&format!("{p}.mask_downscaling.1"), q);
    s.conv(
        &format!("{p}.mask_downscaling.3"),
        q,
        mask_in_chans,
        2,
        1,
        true,
    );
    s.norm(&format!("{p}.mask_downscaling.4"), mask_in_chans);
    s.conv(
        &format!("{p}.mask_downscaling.6"),
        mask_in_chans,
        d,
        1,
        1,
        true,
    );
    s.param(format!("{p}.no_mask_embed.weight"), &[1, d]);
}

fn mask_decoder(s: &mut Specs, cfg: &ModelConfig, m: &MaskDecoderConfig, d: usize) {
    let p = "sam_mask_decoder";
    let t = format!("{p}.transformer");
    let ds = m.attention_downsample_rate.max(1);
    for l in 0..m.transformer_depth {
        let q = format!("{t}.layers.{l}");
        s.sam_attention(&format!("{q}.self_attn"), d, 1, d);
        s.norm(&format!("{q}.norm1"), d);
        s.sam_attention(&format!("{q}.cross_attn_token_to_image"), d, ds, d);
        s.norm(&format!("{q}.norm2"), d);
        s.mlp(&format!("{q}.mlp"), d, m.transformer_mlp_dim, d, 2);
        s.norm(&format!("{q}.norm3"), d);
        s.norm(&format!("{q}.norm4"), d);
        s.sam_attention(&format!("{q}.cross_attn_image_to_token"), d, ds, d);
    }
    s.sam_attention(&format!("{t}.final_attn_token_to_image"), d, ds, d);
    s.norm(&format!("{t}.norm_final_attn"), d);
    let n_masks = m.num_multimask_outputs + 1;
    s.param(format!("{p}.iou_token.weight"), &[1, d]);
    s.param(format!("{p}.mask_tokens.weight"), &[n_masks, d]);
    let tr = &cfg.tracker;
    if tr.pred_obj_scores {
        s.param(format!("{p}.obj_score_token.weight"), &[1, d]);
    }
    s.conv_transpose(&format!("{p}.output_upscaling.0"), d, d / 4, 2);
    s.norm(&format!("{p}.output_upscaling.1"), d / 4);
    s.conv_transpose(&format!("{p}.output_upscaling.3"), d / 4, d / 8, 2);
    if tr.use_high_res_features_in_sam {
        s.conv(&format!("{p}.conv_s0"), d, d / 8, 1, 1, true);
        s.conv(&format!("{p}.conv_s1"), d, d / 4, 1, 1, true);
    }
    for i in 0..n_masks {
        s.mlp(
            &format!("{p}.output_hypernetworks_mlps.{i}"),
            d,
            d,
            d / 8,
            3,
        );
    }
    s.mlp(
        &format!("{p}.iou_prediction_head"),
        d,
        m.iou_head_hidden_dim,
        n_masks,
        m.iou_head_depth,
    );
    if tr.pred_obj_scores {
        if tr.pred_obj_scores_mlp {
            s.mlp(&format!("{p}.pred_obj_score_head"), d, d, 1, 3);
        } else {
            s.linear(&format!("{p}.pred_obj_score_head"), d, 1, true);
        }
    }
}

/// Every tensor the variant's original checkpoint holds, with its shape; the set is exact (the
/// official loader is strict), the order follows the module tree.
pub fn expected_tensors(cfg: &ModelConfig) -> Result<Vec<TensorSpec>> {
    let mut s = Specs { out: Vec::new() };
    let d = cfg.hidden_dim();
    let mem = cfg.mem_dim();
    let tr = &cfg.tracker;

    // Top-level parameters (sam2_base.py).
    s.param("maskmem_tpos_enc", &[tr.num_maskmem, 1, 1, mem]);
    s.param("no_mem_embed", &[1, 1, d]);
    s.param("no_mem_pos_enc", &[1, 1, d]);
    if tr.pred_obj_scores && tr.use_obj_ptrs_in_encoder {
        s.param("no_obj_ptr", &[1, d]);
    }
    if tr.no_obj_embed_spatial {
        s.param("no_obj_embed_spatial", &[1, mem]);
    }

    // Image encoder: trunk, then the FPN neck.
    let stage_dims = match &cfg.image_encoder.trunk {
        TrunkConfig::Hiera(h) => hiera(&mut s, cfg, h, "image_encoder.trunk")?,
        TrunkConfig::Repvit(r) => repvit(&mut s, cfg, r, "image_encoder.trunk.body")?,
    };
    let neck = &cfg.image_encoder.neck;
    let mut lowest_first = stage_dims.clone();
    lowest_first.reverse();
    if neck.backbone_channel_list != lowest_first {
        return Err(cfg_err(
            cfg,
            format!(
                "neck.backbone_channel_list {:?} does not match the trunk's stage widths {:?}",
                neck.backbone_channel_list, lowest_first
            ),
        ));
    }
    for (i, &c) in neck.backbone_channel_list.iter().enumerate() {
        s.conv(
            &format!("image_encoder.neck.convs.{i}.conv"),
            c,
            neck.d_model,
            neck.kernel_size,
            1,
            true,
        );
    }

    if tr.use_obj_ptrs_in_encoder {
        s.conv("mask_downsample", 1, 1, 4, 1, true);
    }
    memory_attention(&mut s, &cfg.memory_attention);
    memory_encoder(&mut s, cfg, &cfg.memory_encoder)?;
    if let Some(pc) = &cfg.spatial_perceiver {
        perceiver(&mut s, pc);
    }
    prompt_encoder(&mut s, d, cfg.prompt_encoder.mask_in_chans);
    mask_decoder(&mut s, cfg, &cfg.mask_decoder, d);

    if tr.use_obj_ptrs_in_encoder {
        if tr.use_mlp_for_obj_ptr_proj {
            s.mlp("obj_ptr_proj", d, d, d, 3);
        } else {
            s.linear("obj_ptr_proj", d, d, true);
        }
    }
    if tr.proj_tpos_enc_in_obj_ptrs {
        s.linear("obj_ptr_tpos_proj", d, mem, true);
    }

    let mut seen = HashSet::new();
    for t in &s.out {
        if !seen.insert(t.name.as_str()) {
            return Err(cfg_err(cfg, format!("spec produced key {} twice", t.name)));
        }
    }
    Ok(s.out)
}

/// Number of `nn.Parameter` elements (what `sum(p.numel() for p in model.parameters())` gives).
pub fn param_count(specs: &[TensorSpec]) -> u64 {
    specs
        .iter()
        .filter(|t| t.kind == TensorKind::Param)
        .map(|t| t.numel() as u64)
        .sum()
}

/// A tensor as found in a file: name, shape, dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// The difference between a checkpoint and a variant's spec.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    pub missing: Vec<TensorSpec>,
    pub unexpected: Vec<FoundTensor>,
    /// (spec, what the file has)
    pub wrong_shape: Vec<(TensorSpec, FoundTensor)>,
    /// Integer tensors stored as float or the other way round.
    pub wrong_dtype: Vec<(TensorSpec, FoundTensor)>,
}

fn shape_str(s: &[usize]) -> String {
    format!("{s:?}")
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    const SHOWN: usize = 3;
    let mut s: Vec<String> = items.iter().take(SHOWN).map(f).collect();
    if items.len() > SHOWN {
        s.push(format!("... ({} more)", items.len() - SHOWN));
    }
    s.join(", ")
}

impl Validation {
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
            && self.wrong_dtype.is_empty()
    }

    /// One line naming the first few problems of each kind.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.wrong_shape.is_empty() {
            parts.push(format!(
                "{} tensors with the wrong shape: {}",
                self.wrong_shape.len(),
                list(&self.wrong_shape, |(s, f)| format!(
                    "{} is {} but the variant needs {}",
                    s.name,
                    shape_str(&f.shape),
                    shape_str(&s.shape)
                ))
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing keys: {}",
                self.missing.len(),
                list(&self.missing, |s| format!(
                    "{} {}",
                    s.name,
                    shape_str(&s.shape)
                ))
            ));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected keys: {}",
                self.unexpected.len(),
                list(&self.unexpected, |f| format!(
                    "{} {}",
                    f.name,
                    shape_str(&f.shape)
                ))
            ));
        }
        if !self.wrong_dtype.is_empty() {
            parts.push(format!(
                "{} tensors with the wrong dtype: {}",
                self.wrong_dtype.len(),
                list(&self.wrong_dtype, |(s, f)| format!(
                    "{} is {:?} but must be {}",
                    s.name,
                    f.dtype,
                    if s.integer { "an integer" } else { "a float" }
                ))
            ));
        }
        parts.join("; ")
    }
}

fn is_float(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// Compare what a file holds with what the variant needs.
pub fn validate(specs: &[TensorSpec], found: &[FoundTensor]) -> Validation {
    let by_name: HashMap<&str, &FoundTensor> = found.iter().map(|f| (f.name.as_str(), f)).collect();
    let spec_names: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let mut v = Validation::default();
    for s in specs {
        match by_name.get(s.name.as_str()) {
            None => v.missing.push(s.clone()),
            Some(f) => {
                if f.shape != s.shape {
                    v.wrong_shape.push((s.clone(), (*f).clone()));
                } else if s.integer == is_float(f.dtype) {
                    v.wrong_dtype.push((s.clone(), (*f).clone()));
                }
            }
        }
    }
    let mut unexpected: Vec<FoundTensor> = found
        .iter()
        .filter(|f| !spec_names.contains(f.name.as_str()))
        .cloned()
        .collect();
    unexpected.sort_by(|a, b| a.name.cmp(&b.name));
    v.unexpected = unexpected;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Registry;

    #[test]
    fn make_divisible_matches_timm() {
        assert_eq!(make_divisible(12.0, 8), 16);
        assert_eq!(make_divisible(24.0, 8), 24);
        assert_eq!(make_divisible(48.0, 8), 48);
        assert_eq!(make_divisible(96.0, 8), 96);
        assert_eq!(make_divisible(2.0, 8), 8);
    }

    #[test]
    fn hiera_layout_matches_the_dumped_models() {
        let reg = Registry::builtin().unwrap();
        let want = [
            ("sam2.1_hiera_tiny", vec![0, 2, 9, 11], vec![1, 3, 10]),
            ("sam2.1_hiera_small", vec![0, 2, 13, 15], vec![1, 3, 14]),
            ("sam2.1_hiera_base_plus", vec![1, 4, 20, 23], vec![2, 5, 21]),
            ("sam2.1_hiera_large", vec![1, 7, 43, 47], vec![2, 8, 44]),
        ];
        for (name, ends, q) in want {
            let cfg = reg.resolve(name).unwrap();
            assert_eq!(hiera_layout(cfg.hiera().unwrap()), (ends, q), "{name}");
        }
    }

    #[test]
    fn parameter_and_key_counts_match_architecture_1_9() {
        let reg = Registry::builtin().unwrap();
        let want = [
            ("sam2.1_hiera_tiny", 471, 38_962_498u64),
            ("sam2.1_hiera_small", 519, 46_060_354),
            ("sam2.1_hiera_base_plus", 615, 80_850_178),
            ("sam2.1_hiera_large", 903, 224_446_642),
            ("edgetam", 982, 13_895_794),
        ];
        for (name, keys, params) in want {
            let cfg = reg.resolve(name).unwrap();
            let specs = expected_tensors(&cfg).unwrap();
            assert_eq!(specs.len(), keys, "{name} key count");
            assert_eq!(param_count(&specs), params, "{name} parameter count");
            assert_eq!(
                cfg.checkpoint.expected_params,
                Some(params),
                "{name} registry"
            );
        }
        // EdgeTAM: 319 buffers = 106 BatchNorms x (running mean, running var, int64 counter) plus
        // the prompt encoder's gaussian matrix; the counters are scalars.
        let e = expected_tensors(&reg.resolve("edgetam").unwrap()).unwrap();
        assert_eq!(
            e.iter().filter(|t| t.kind == TensorKind::Buffer).count(),
            319
        );
        let counters: Vec<_> = e.iter().filter(|t| t.integer).collect();
        assert_eq!(counters.len(), 106);
        assert!(counters
            .iter()
            .all(|t| t.shape.is_empty() && t.name.ends_with("num_batches_tracked")));
        // SAM 2.1: the only buffer is the prompt encoder's gaussian matrix.
        let t = expected_tensors(&reg.resolve("sam2.1_hiera_tiny").unwrap()).unwrap();
        let bufs: Vec<_> = t
            .iter()
            .filter(|t| t.kind == TensorKind::Buffer)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            bufs,
            ["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
        );
    }

    #[test]
    fn validation_reports_each_kind_of_problem() {
        let specs = vec![
            TensorSpec {
                name: "a".into(),
                shape: vec![2, 3],
                kind: TensorKind::Param,
                integer: false,
            },
            TensorSpec {
                name: "b".into(),
                shape: vec![4],
                kind: TensorKind::Param,
                integer: false,
            },
            TensorSpec {
                name: "n".into(),
                shape: vec![],
                kind: TensorKind::Buffer,
                integer: true,
            },
        ];
        let found = vec![
            FoundTensor {
                name: "a".into(),
                shape: vec![3, 2],
                dtype: DType::F32,
            },
            FoundTensor {
                name: "n".into(),
                shape: vec![],
                dtype: DType::F32,
            },
            FoundTensor {
                name: "zzz".into(),
                shape: vec![1],
                dtype: DType::F32,
            },
        ];
        let v = validate(&specs, &found);
        assert!(!v.is_ok());
        let s = v.summary();
        assert!(
            s.contains("a is [3, 2] but the variant needs [2, 3]"),
            "{s}"
        );
        assert!(s.contains("1 missing keys: b [4]"), "{s}");
        assert!(s.contains("1 unexpected keys: zzz [1]"), "{s}");
        assert!(s.contains("n is F32 but must be an integer"), "{s}");
        let ok = validate(
            &specs,
            &[
                FoundTensor {
                    name: "a".into(),
                    shape: vec![2, 3],
                    dtype: DType::BF16,
                },
                FoundTensor {
                    name: "b".into(),
                    shape: vec![4],
                    dtype: DType::F16,
                },
                FoundTensor {
                    name: "n".into(),
                    shape: vec![],
                    dtype: DType::I64,
                },
            ],
        );
        assert!(ok.is_ok(), "{}", ok.summary());
    }
}

/// Development check against the key dumps of the official models (shared reference material,
/// not shipped with the crate): `VOSBENCH_KEYS_DIR=/path/to/keys cargo test --lib spec -- --ignored`.
#[cfg(test)]
mod reference_dumps {
    use super::*;
    use crate::config::Registry;

    #[test]
    #[ignore = "needs VOSBENCH_KEYS_DIR pointing at the official key dumps"]
    fn spec_equals_official_key_dumps() {
        let dir = std::path::PathBuf::from(
            std::env::var("VOSBENCH_KEYS_DIR").expect("VOSBENCH_KEYS_DIR"),
        );
        let reg = Registry::builtin().unwrap();
        let files = [
            ("sam2.1_hiera_tiny", "sam2.1_t.txt"),
            ("sam2.1_hiera_small", "sam2.1_s.txt"),
            ("sam2.1_hiera_base_plus", "sam2.1_b+.txt"),
            ("sam2.1_hiera_large", "sam2.1_l.txt"),
            ("edgetam", "edgetam.txt"),
        ];
        for (name, file) in files {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let mut want: Vec<(String, Vec<usize>, bool)> = Vec::new();
            for line in text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
            {
                let cols: Vec<&str> = line.split('\t').collect();
                let shape: Vec<usize> = cols[1]
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse().unwrap())
                    .collect();
                want.push((cols[0].to_string(), shape, cols[2] == "int64"));
            }
            let cfg = reg.resolve(name).unwrap();
            let mut got: Vec<(String, Vec<usize>, bool)> = expected_tensors(&cfg)
                .unwrap()
                .into_iter()
                .map(|t| (t.name, t.shape, t.integer))
                .collect();
            want.sort();
            got.sort();
            let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
            let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{name}: spec lacks {:?}\nspec has extra {:?}",
                &missing[..missing.len().min(10)],
                &extra[..extra.len().min(10)]
            );
            eprintln!("{name}: {} keys match", got.len());
        }
    }
}
