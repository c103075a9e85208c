//! Stage-by-stage parity of the candle models against a reference fixture written by the official
//! PyTorch code (`tests/reference/make_*_fixtures.py`, names in `tests/reference/FIXTURES.md`), on
//! any device, so full-size parity can be measured where the Rust toolchain is absent
//! (`vosbench parity`).
//!
//! Every stage is fed the reference's own inputs (moved to the device), except the stages whose
//! input is the frame itself (trunk outputs, RepViT intermediates, the image-encoder outputs):
//! those run from the fixture image, as the model does. Results are compared on the host in f64.
//! Stages a fixture does not hold are skipped; a stage whose output is present but whose input is
//! not is an input error naming the missing tensor.

use crate::config::{ModelConfig, TrunkConfig};
use crate::error::{Error, Result};
use crate::nn::ModelOptions;
use crate::sam2::backbones::hieradet::Hiera;
use crate::sam2::backbones::repvit::RepVit;
use crate::sam2::mask_decoder::stability_scores;
use crate::sam2::sam2_base::{FrameFeatures, Memory, PointInputs, Sam2Base};
use crate::tracker::frames::{FrameSource, RgbFrames};
use crate::tracker::memory_bank::{FrameOutput, OutputStore};
use crate::tracker::preprocess::VideoFrames;
use crate::tracker::session::{FrameResult, Prompt, Session, SessionOptions};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// How a stage was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The reference's own inputs for this stage (errors cannot compound from earlier stages).
    Reference,
    /// The fixture image, through every earlier stage of our model.
    Image,
}

impl Feed {
    pub fn as_str(&self) -> &'static str {
        match self {
            Feed::Reference => "ref",
            Feed::Image => "image",
        }
    }
}

/// One compared tensor.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub name: String,
    /// ||ours - ref|| / ||ref|| in f64 (||ours - ref|| when the reference is all zeros); NaN when
    /// ours holds non-finite values, infinite on a shape mismatch.
    pub rel_l2: f64,
    pub max_abs: f64,
    pub numel: usize,
    pub feed: Feed,
    /// Why a comparison could not be made (shape mismatch), else empty.
    pub note: String,
}

impl StageResult {
    /// Within `tol` (NaN and shape mismatches never are).
    pub fn ok(&self, tol: f64) -> bool {
        self.rel_l2 <= tol
    }
}

/// Compare `got` (any device, any float dtype) with the reference `want` on the host in f64.
pub fn compare(name: &str, got: &Tensor, want: &Tensor, feed: Feed) -> Result<StageResult> {
    if got.dims() != want.dims() {
        return Ok(StageResult {
            name: name.to_string(),
            rel_l2: f64::INFINITY,
            max_abs: f64::INFINITY,
            numel: want.elem_count(),
            feed,
            note: format!("shape {:?} vs reference {:?}", got.dims(), want.dims()),
        });
    }
    let host = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?)
    };
    let a = host(got)?;
    let b = host(want)?;
    let (mut num, mut den, mut max_abs) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        let d = x - y;
        num += d * d;
        den += y * y;
        // NaN-propagating max: a NaN anywhere must show
        let ad = d.abs();
        if ad.is_nan() || ad > max_abs {
            max_abs = if max_abs.is_nan() { max_abs } else { ad };
        }
    }
    let rel_l2 = if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    };
    Ok(StageResult {
        name: name.to_string(),
        rel_l2,
        max_abs,
        numel: b.len(),
        feed,
        note: String::new(),
    })
}

/// The fixture tensors that are inputs of some stage (never compared themselves).
pub fn is_input(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "image",
        "prompt.mask.input",
        "decoder.image_embeddings",
        "decoder.high_res.0",
        "decoder.high_res.1",
        "memenc.pix_feat",
        "memenc.mask",
        "perceiver.in.features",
        "perceiver.in.pos",
        "memattn.curr",
        "memattn.curr_pos",
        "memattn.memory",
        "memattn.memory_pos",
        "memattn.num_obj_ptr_tokens",
        "memattn.num_spatial_mem",
        "encode_new_memory.input_vision_feat",
        "obj_ptr_tpos.input",
        "obj_ptr_tpos.max_ptr",
        "prepare_memory.maskmem_pos_enc",
        "prepare_memory.frame_idx",
        "prepare_memory.num_frames",
    ];
    if EXACT.contains(&name) {
        return true;
    }
    let suffix_of = |prefix: &str, suffixes: &[&str]| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once('.'))
            .is_some_and(|(_, last)| suffixes.contains(&last))
    };
    (name.starts_with("prompt.") && suffix_of("prompt.", &["coords", "labels"]))
        || suffix_of(
            "encode_new_memory.",
            &[
                "pred_masks_high_res",
                "object_score_logits",
                "is_mask_from_pts",
            ],
        )
        || name.starts_with("prepare_memory.maskmem_features.")
        || name.starts_with("prepare_memory.obj_ptr.")
}

/// Fixture tensors that are neither inputs nor among `results` (a stage this runner skipped).
pub fn uncompared(stages: &HashMap<String, Tensor>, results: &[StageResult]) -> Vec<String> {
    let done: BTreeSet<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let mut v: Vec<String> = stages
        .keys()
        .filter(|k| !is_input(k) && !done.contains(k.as_str()))
        .cloned()
        .collect();
    v.sort();
    v
}

/// Read a fixture folder's `stages.safetensors` onto the host.
pub fn load_stages(dir: &Path) -> Result<HashMap<String, Tensor>> {
    load_safetensors(&dir.join("stages.safetensors"))
}

fn load_safetensors(p: &Path) -> Result<HashMap<String, Tensor>> {
    if !p.is_file() {
        return Err(Error::Input(format!(
            "missing fixture file {}",
            p.display()
        )));
    }
    candle_core::safetensors::load(p, &Device::Cpu)
        .map_err(|e| Error::Input(format!("cannot read fixture {}: {e}", p.display())))
}

/// Weights as a VarBuilder in f32 on `device`: an original-format PyTorch checkpoint
/// (`{"model": state_dict}`, e.g. a fixture's `model.pt`) or a vosbench-converted `.safetensors`
/// (validated against `cfg` first).
pub fn load_weights(
    path: &Path,
    cfg: &ModelConfig,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    if !path.is_file() {
        return Err(Error::Input(format!("missing weights {}", path.display())));
    }
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_safetensors {
        return crate::weights::load_var_builder(path, cfg, DType::F32, device);
    }
    let tensors = candle_core::pickle::read_all_with_key(path, Some("model")).map_err(|e| {
        Error::checkpoint(path, format!("cannot read as a PyTorch checkpoint: {e}"))
    })?;
    if tensors.is_empty() {
        return Err(Error::checkpoint(path, "no tensors under \"model\""));
    }
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    Ok(VarBuilder::from_tensors(map, DType::F32, device))
}

/// [`load_weights`] with some tensors replaced by those of `overrides` (a safetensors file, e.g. a
/// video fixture's `weight_overrides.safetensors`); every override must name an existing tensor of
/// the same shape.
pub fn load_weights_with_overrides(
    path: &Path,
    overrides: &Path,
    cfg: &ModelConfig,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    if !path.is_file() {
        return Err(Error::Input(format!("missing weights {}", path.display())));
    }
    let is_safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let mut map: HashMap<String, Tensor> = if is_safetensors {
        crate::weights::inspect_converted(path, cfg)?;
        candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::checkpoint(path, format!("cannot read: {e}")))?
    } else {
        candle_core::pickle::read_all_with_key(path, Some("model"))
            .map_err(|e| {
                Error::checkpoint(path, format!("cannot read as a PyTorch checkpoint: {e}"))
            })?
            .into_iter()
            .collect()
    };
    for (k, v) in load_safetensors(overrides)? {
        match map.get(&k) {
            Some(old) if old.dims() == v.dims() => {
                map.insert(k, v);
            }
            Some(old) => {
                return Err(Error::Input(format!(
                    "{}: override {k} has shape {:?}, the weights have {:?}",
                    overrides.display(),
                    v.dims(),
                    old.dims()
                )))
            }
            None => {
                return Err(Error::Input(format!(
                    "{}: override {k} is not a tensor of {}",
                    overrides.display(),
                    path.display()
                )))
            }
        }
    }
    Ok(VarBuilder::from_tensors(map, DType::F32, device))
}

/// Fixture access: outputs stay on the host, inputs go to the device in f32.
struct Fx<'a> {
    t: &'a HashMap<String, Tensor>,
    dev: &'a Device,
    out: Vec<StageResult>,
}

impl Fx<'_> {
    fn has(&self, name: &str) -> bool {
        self.t.contains_key(name)
    }

    fn any(&self, names: &[String]) -> bool {
        names.iter().any(|n| self.has(n))
    }

    fn any_prefix(&self, prefix: &str) -> bool {
        self.t.keys().any(|k| k.starts_with(prefix) && !is_input(k))
    }

    /// An input on the device; `stage` names what needs it.
    fn input(&self, name: &str, stage: &str) -> Result<Tensor> {
        let t = self.t.get(name).ok_or_else(|| {
            Error::Input(format!(
                "fixture has {stage} but not its input tensor '{name}'"
            ))
        })?;
        Ok(t.to_dtype(DType::F32)?.to_device(self.dev)?)
    }

    fn scalar(&self, name: &str, stage: &str) -> Result<f64> {
        let t = self.t.get(name).ok_or_else(|| {
            Error::Input(format!(
                "fixture has {stage} but not its input tensor '{name}'"
            ))
        })?;
        let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        match v.as_slice() {
            [x] if x.is_finite() => Ok(*x),
            _ => Err(Error::Input(format!(
                "fixture tensor '{name}' should hold one finite number, has {:?}",
                t.dims()
            ))),
        }
    }

    fn count(&self, name: &str, stage: &str) -> Result<usize> {
        let v = self.scalar(name, stage)?;
        if v < 0.0 || v.fract() != 0.0 {
            return Err(Error::Input(format!(
                "fixture tensor '{name}' should be a count, is {v}"
            )));
        }
        Ok(v as usize)
    }

    /// Compare `got` with the fixture tensor `name` if the fixture has it.
    fn check(&mut self, name: &str, got: &Tensor, feed: Feed) -> Result<()> {
        if let Some(want) = self.t.get(name) {
            let r = compare(name, got, want, feed)?;
            self.out.push(r);
        }
        Ok(())
    }

    /// Compare a token-major `[B, N, C]` result with a reference stored either token-major or as
    /// a `[B, C, h, w]` map.
    fn check_tokens(&mut self, name: &str, tokens: &Tensor, feed: Feed) -> Result<()> {
        let Some(want) = self.t.get(name) else {
            return Ok(());
        };
        let got = match want.dims() {
            [b, c, h, w] if tokens.dims() == [*b, h * w, *c] => {
                tokens.transpose(1, 2)?.reshape((*b, *c, *h, *w))?
            }
            _ => tokens.clone(),
        };
        let r = compare(name, &got, want, feed)?;
        self.out.push(r);
        Ok(())
    }
}

/// `[HW, B, C]` (sequence-first) -> `[B, C, e, e]`.
fn seq_to_map(x: &Tensor, e: usize, name: &str) -> Result<Tensor> {
    let (hw, b, c) = x.dims3()?;
    if hw != e * e {
        return Err(Error::Input(format!(
            "fixture tensor '{name}' has {hw} tokens, the variant's {e}x{e} grid has {}",
            e * e
        )));
    }
    Ok(x.permute((1, 2, 0))?.reshape((b, c, e, e))?)
}

/// `[B, C, h, w]` maps become token-major `[B, h*w, C]`; token-major tensors are kept.
fn to_tokens(x: &Tensor) -> Result<Tensor> {
    Ok(match x.rank() {
        4 => x.flatten_from(2)?.transpose(1, 2)?.contiguous()?,
        _ => x.clone(),
    })
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Build the model described by `cfg` from `weights` on `device` (f32) and compare every stage
/// `stages` holds (see the module docs). Results are in pipeline order.
pub fn run_stages(
    cfg: &ModelConfig,
    weights: VarBuilder,
    stages: &HashMap<String, Tensor>,
    device: &Device,
) -> Result<Vec<StageResult>> {
    run_stages_with(cfg, weights, stages, device, &ModelOptions::default())
}

/// [`run_stages`] with the model built with `model_opts` (the CLI's convolution settings).
pub fn run_stages_with(
    cfg: &ModelConfig,
    weights: VarBuilder,
    stages: &HashMap<String, Tensor>,
    device: &Device,
    model_opts: &ModelOptions,
) -> Result<Vec<StageResult>> {
    let mut fx = Fx {
        t: stages,
        dev: device,
        out: Vec::new(),
    };
    let levels = cfg.image_encoder.neck.backbone_channel_list.len();
    match &cfg.image_encoder.trunk {
        TrunkConfig::Hiera(h) if fx.any_prefix("trunk.") => {
            let trunk = Hiera::new(h, model_opts, weights.pp("image_encoder").pp("trunk"))?
                .with_image_size(cfg.image_size)?;
            hiera_stages(&mut fx, &trunk, levels)?;
        }
        TrunkConfig::Repvit(r) if fx.any_prefix("trunk.") => {
            let trunk = RepVit::new(r, model_opts, weights.pp("image_encoder").pp("trunk"))?;
            let image = fx.input("image", "trunk.*")?;
            let mut taps: Vec<(String, Tensor)> = Vec::new();
            let outs = trunk.forward_with_taps(&image, &mut |n, x| {
                taps.push((n.to_string(), x.clone()));
            })?;
            for (n, x) in &taps {
                fx.check(n, x, Feed::Image)?;
            }
            for (k, y) in outs.iter().enumerate() {
                fx.check(&format!("trunk.out.{k}"), y, Feed::Image)?;
            }
        }
        _ => {}
    }
    let model = Sam2Base::new_with(cfg, model_opts, weights)?;
    encoder_stages(&mut fx, &model, levels)?;
    head_stages(&mut fx, &model, cfg)?;
    memory_stages(&mut fx, &model, cfg)?;
    glue_stages(&mut fx, &model, cfg)?;
    Ok(fx.out)
}

fn hiera_stages(fx: &mut Fx, trunk: &Hiera, levels: usize) -> Result<()> {
    if fx.has("trunk.patch_embed") {
        let image = fx.input("image", "trunk.patch_embed")?;
        fx.check(
            "trunk.patch_embed",
            &trunk.patch_embed(&image)?,
            Feed::Reference,
        )?;
    }
    if let Some(want) = fx.t.get("trunk.pos_embed") {
        let (_, h, w, _) = want.dims4()?;
        fx.check(
            "trunk.pos_embed",
            &trunk.pos_embed_for((h, w))?,
            Feed::Reference,
        )?;
    }
    for (i, blk) in trunk.blocks().iter().enumerate() {
        let name = format!("trunk.blocks.{i}");
        if !fx.has(&name) {
            continue;
        }
        let x = if i == 0 {
            let pe = fx.input("trunk.patch_embed", &name)?;
            let pos = fx.input("trunk.pos_embed", &name)?;
            pe.broadcast_add(&pos)?
        } else {
            fx.input(&format!("trunk.blocks.{}", i - 1), &name)?
        };
        fx.check(&name, &blk.forward(&x)?, Feed::Reference)?;
    }
    if fx.any(&numbered("trunk.out.", levels)) {
        let image = fx.input("image", "trunk.out.*")?;
        let outs = trunk.forward_stages(&image)?;
        for (k, y) in outs.iter().enumerate() {
            fx.check(&format!("trunk.out.{k}"), y, Feed::Image)?;
        }
    }
    Ok(())
}

fn encoder_stages(fx: &mut Fx, model: &Sam2Base, levels: usize) -> Result<()> {
    let mut neck_names = numbered("neck.fpn.", levels);
    neck_names.extend(numbered("neck.pos.", levels));
    if fx.any(&neck_names) {
        let xs = (0..levels)
            .map(|k| fx.input(&format!("trunk.out.{k}"), "neck.*"))
            .collect::<Result<Vec<_>>>()?;
        let (fpn, pos) = model.image_encoder.neck().forward(&xs)?;
        for (k, (f, p)) in fpn.iter().zip(&pos).enumerate() {
            fx.check(&format!("neck.fpn.{k}"), f, Feed::Reference)?;
            fx.check(&format!("neck.pos.{k}"), p, Feed::Reference)?;
        }
    }
    let mut enc_names = numbered("encoder.backbone_fpn.", levels);
    enc_names.extend(numbered("encoder.vision_pos_enc.", levels));
    let top = numbered("forward_image.backbone_fpn.", levels);
    let mut ours_last_level = None;
    let needs_top = top.iter().skip(2).any(|n| fx.has(n));
    if fx.any(&enc_names) || needs_top {
        let image = fx.input("image", "encoder.*")?;
        let out = model.image_encoder.forward(&image)?;
        for (k, (f, p)) in out.backbone_fpn.iter().zip(&out.vision_pos_enc).enumerate() {
            fx.check(&format!("encoder.backbone_fpn.{k}"), f, Feed::Image)?;
            fx.check(&format!("encoder.vision_pos_enc.{k}"), p, Feed::Image)?;
        }
        ours_last_level = Some((out.backbone_fpn.len(), out.vision_features));
    }
    // SAM2Base.forward_image: conv_s0 / conv_s1 on the reference levels; the last level passes
    // through unchanged (compared from our end-to-end encoder run).
    let md = &model.sam_mask_decoder;
    if fx.has("forward_image.backbone_fpn.0") {
        let x = fx.input("encoder.backbone_fpn.0", "forward_image.backbone_fpn.0")?;
        fx.check(
            "forward_image.backbone_fpn.0",
            &md.conv_s0(&x)?,
            Feed::Reference,
        )?;
    }
    if fx.has("forward_image.backbone_fpn.1") {
        let x = fx.input("encoder.backbone_fpn.1", "forward_image.backbone_fpn.1")?;
        fx.check(
            "forward_image.backbone_fpn.1",
            &md.conv_s1(&x)?,
            Feed::Reference,
        )?;
    }
    if let Some((n, last)) = ours_last_level {
        fx.check(
            &format!("forward_image.backbone_fpn.{}", n - 1),
            &last,
            Feed::Image,
        )?;
    }
    Ok(())
}

/// The reference prompt cases: `prompt.{case}.sparse|dense` other than the mask prompt.
fn prompt_cases(fx: &Fx) -> Vec<String> {
    let mut cases: BTreeSet<String> = BTreeSet::new();
    for k in fx.t.keys() {
        if let Some(rest) = k.strip_prefix("prompt.") {
            if let Some((case, part)) = rest.rsplit_once('.') {
                if (part == "sparse" || part == "dense") && case != "mask" {
                    cases.insert(case.to_string());
                }
            }
        }
    }
    cases.into_iter().collect()
}

fn head_stages(fx: &mut Fx, model: &Sam2Base, cfg: &ModelConfig) -> Result<()> {
    let pe = &model.sam_prompt_encoder;
    for case in prompt_cases(fx) {
        let stage = format!("prompt.{case}.*");
        let coords = fx.input(&format!("prompt.{case}.coords"), &stage)?;
        let labels = fx.input(&format!("prompt.{case}.labels"), &stage)?;
        let (sparse, dense) = pe.forward(Some((&coords, &labels)), None)?;
        fx.check(&format!("prompt.{case}.sparse"), &sparse, Feed::Reference)?;
        fx.check(&format!("prompt.{case}.dense"), &dense, Feed::Reference)?;
    }
    if fx.has("prompt.mask.dense") {
        let m = fx.input("prompt.mask.input", "prompt.mask.dense")?;
        fx.check("prompt.mask.dense", &pe.embed_masks(&m)?, Feed::Reference)?;
    }
    if fx.has("prompt.dense_pe") {
        fx.check("prompt.dense_pe", &pe.get_dense_pe(), Feed::Reference)?;
    }

    let use_hr = cfg.tracker.use_high_res_features_in_sam;
    let high_res = |fx: &Fx, stage: &str| -> Result<Option<(Tensor, Tensor)>> {
        if !use_hr {
            return Ok(None);
        }
        Ok(Some((
            fx.input("decoder.high_res.0", stage)?,
            fx.input("decoder.high_res.1", stage)?,
        )))
    };
    let md = &model.sam_mask_decoder;
    // (output group, prompt case, multimask)
    for (group, case, multi) in [
        ("predict", "points", None),
        ("multi", "points", Some(true)),
        ("single", "box", Some(false)),
    ] {
        let parts: &[&str] = match multi {
            None => &["masks", "iou", "mask_tokens_out", "object_score"],
            Some(_) => &["masks", "iou", "sam_tokens_out", "object_score"],
        };
        let names: Vec<String> = parts
            .iter()
            .map(|p| format!("decoder.{group}.{p}"))
            .collect();
        let want_stability = group == "single" && fx.has("decoder.single.stability");
        if !fx.any(&names) && !want_stability {
            continue;
        }
        let stage = format!("decoder.{group}.*");
        let img = fx.input("decoder.image_embeddings", &stage)?;
        let dense_pe = fx.input("prompt.dense_pe", &stage)?;
        let sp = fx.input(&format!("prompt.{case}.sparse"), &stage)?;
        let de = fx.input(&format!("prompt.{case}.dense"), &stage)?;
        let hr = high_res(fx, &stage)?;
        let hr_ref = hr.as_ref().map(|(a, b)| (a, b));
        match multi {
            None => {
                let p = md.predict_masks(&img, &dense_pe, &sp, &de, false, hr_ref)?;
                for (n, t) in names.iter().zip([
                    &p.masks,
                    &p.iou_pred,
                    &p.mask_tokens_out,
                    &p.object_score_logits,
                ]) {
                    fx.check(n, t, Feed::Reference)?;
                }
            }
            Some(mm) => {
                let o = md.forward(&img, &dense_pe, &sp, &de, mm, false, hr_ref)?;
                for (n, t) in names.iter().zip([
                    &o.masks,
                    &o.iou_pred,
                    &o.sam_tokens_out,
                    &o.object_score_logits,
                ]) {
                    fx.check(n, t, Feed::Reference)?;
                }
                if want_stability {
                    let p = md.predict_masks(&img, &dense_pe, &sp, &de, false, hr_ref)?;
                    let s = stability_scores(
                        &p.masks.narrow(1, 0, 1)?,
                        cfg.mask_decoder.dynamic_multimask_stability_delta,
                    )?
                    .flatten_all()?;
                    fx.check("decoder.single.stability", &s, Feed::Reference)?;
                }
            }
        }
    }

    // SAM2Base._forward_sam_heads on each reference case present.
    let mut head_cases: BTreeSet<String> = BTreeSet::new();
    for k in fx.t.keys() {
        if let Some((case, _)) = k.strip_prefix("heads.").and_then(|r| r.split_once('.')) {
            head_cases.insert(case.to_string());
        }
    }
    for case in head_cases {
        let stage = format!("heads.{case}.*");
        let emb = fx.input("decoder.image_embeddings", &stage)?;
        let pts = PointInputs {
            coords: fx.input(&format!("prompt.{case}.coords"), &stage)?,
            labels: fx.input(&format!("prompt.{case}.labels"), &stage)?,
        };
        let hr = high_res(fx, &stage)?;
        let hr_ref = hr.as_ref().map(|(a, b)| (a, b));
        // what the official predictor decides on an initial conditioning frame
        let multimask = model.use_multimask(true, pts.num_points()?);
        let o = model.forward_sam_heads(&emb, Some(&pts), None, hr_ref, multimask)?;
        for (part, t) in [
            ("low_res_multimasks", &o.low_res_multimasks),
            ("high_res_multimasks", &o.high_res_multimasks),
            ("ious", &o.ious),
            ("low_res_masks", &o.low_res_masks),
            ("high_res_masks", &o.high_res_masks),
            ("obj_ptr", &o.obj_ptr),
            ("object_score_logits", &o.object_score_logits),
        ] {
            fx.check(&format!("heads.{case}.{part}"), t, Feed::Reference)?;
        }
    }
    Ok(())
}

fn memory_stages(fx: &mut Fx, model: &Sam2Base, cfg: &ModelConfig) -> Result<()> {
    if fx.any_prefix("memenc.") {
        let pix = fx.input("memenc.pix_feat", "memenc.*")?;
        let mask = fx.input("memenc.mask", "memenc.*")?;
        let s = model.memory_encoder.forward_stages(&pix, &mask, true)?;
        fx.check(
            "memenc.mask_downsampler",
            &s.mask_downsampled,
            Feed::Reference,
        )?;
        fx.check("memenc.fuser", &s.fused, Feed::Reference)?;
        fx.check("memenc.features", &s.features, Feed::Reference)?;
        fx.check("memenc.pos", &s.pos, Feed::Reference)?;
    }
    if fx.any_prefix("perceiver.") {
        let p = model.spatial_perceiver.as_ref().ok_or_else(|| {
            Error::Input(format!(
                "the fixture has perceiver.* tensors but variant {} has no spatial perceiver",
                cfg.name
            ))
        })?;
        let x = fx.input("perceiver.in.features", "perceiver.*")?;
        let pos = fx.input("perceiver.in.pos", "perceiver.*")?;
        let mut taps: Vec<(String, Tensor)> = Vec::new();
        let (lat, lpos) = p.forward_with_taps(&x, &pos, &mut |n, t| {
            taps.push((n.to_string(), t.clone()));
        })?;
        for (n, t) in &taps {
            fx.check(n, t, Feed::Reference)?;
        }
        fx.check("perceiver.out.features", &lat, Feed::Reference)?;
        fx.check("perceiver.out.pos", &lpos, Feed::Reference)?;
    }
    let mut names = numbered("memattn.layers.", cfg.memory_attention.num_layers);
    names.push("memattn.out".into());
    if fx.any(&names) {
        let stage = "memattn.*";
        let curr = fx.input("memattn.curr", stage)?;
        let curr_pos = fx.input("memattn.curr_pos", stage)?;
        let memory = fx.input("memattn.memory", stage)?;
        let memory_pos = fx.input("memattn.memory_pos", stage)?;
        let n_ptr = fx.count("memattn.num_obj_ptr_tokens", stage)?;
        let frames = if fx.has("memattn.num_spatial_mem") {
            Some(fx.count("memattn.num_spatial_mem", stage)?)
        } else {
            None
        };
        let (out, layers) = model.memory_attention.forward_layers(
            &curr,
            &memory,
            &curr_pos,
            &memory_pos,
            n_ptr,
            frames,
        )?;
        for (i, l) in layers.iter().enumerate() {
            fx.check(&format!("memattn.layers.{i}"), l, Feed::Reference)?;
        }
        fx.check("memattn.out", &out, Feed::Reference)?;
    }
    Ok(())
}

fn glue_stages(fx: &mut Fx, model: &Sam2Base, cfg: &ModelConfig) -> Result<()> {
    let e = cfg.embedding_size();
    let mut enc_cases: BTreeSet<String> = BTreeSet::new();
    for k in fx.t.keys() {
        if let Some((case, part)) = k
            .strip_prefix("encode_new_memory.")
            .and_then(|r| r.split_once('.'))
        {
            if part == "features" || part == "pos" {
                enc_cases.insert(case.to_string());
            }
        }
    }
    if !enc_cases.is_empty() {
        let name = "encode_new_memory.input_vision_feat";
        let pix = seq_to_map(&fx.input(name, "encode_new_memory.*")?, e, name)?;
        for case in enc_cases {
            let pre = format!("encode_new_memory.{case}");
            let stage = format!("{pre}.*");
            let masks = fx.input(&format!("{pre}.pred_masks_high_res"), &stage)?;
            let score = fx.input(&format!("{pre}.object_score_logits"), &stage)?;
            let from_pts = fx.scalar(&format!("{pre}.is_mask_from_pts"), &stage)? > 0.5;
            let mem = model.encode_new_memory(&pix, &masks, &score, from_pts)?;
            fx.check_tokens(&format!("{pre}.features"), &mem.features, Feed::Reference)?;
            fx.check_tokens(&format!("{pre}.pos"), &mem.pos, Feed::Reference)?;
        }
    }

    if fx.has("obj_ptr_tpos.output") {
        let stage = "obj_ptr_tpos.output";
        let pos: Vec<i64> = fx
            .t
            .get("obj_ptr_tpos.input")
            .ok_or_else(|| Error::Input(format!("fixture has {stage} but not obj_ptr_tpos.input")))?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?
            .into_iter()
            .map(|v| v.round() as i64)
            .collect();
        // the normalising length is min(num_frames, max_obj_ptrs): passing it as num_frames
        // gives the same value, since it never exceeds max_obj_ptrs
        let max_ptr = fx.count("obj_ptr_tpos.max_ptr", stage)?;
        let got = model.pointer_pos_enc(&pos, max_ptr, fx.dev)?;
        fx.check(stage, &got, Feed::Reference)?;
    }

    if fx.has("prepare_memory.out") {
        let stage = "prepare_memory.out";
        let pos_enc = to_tokens(&fx.input("prepare_memory.maskmem_pos_enc", stage)?)?;
        let n_mem = (0..)
            .take_while(|i| fx.has(&format!("prepare_memory.maskmem_features.{i}")))
            .count();
        if n_mem == 0 {
            return Err(Error::Input(format!(
                "fixture has {stage} but no prepare_memory.maskmem_features.0"
            )));
        }
        let mut store = OutputStore::default();
        for i in 0..n_mem {
            let features =
                to_tokens(&fx.input(&format!("prepare_memory.maskmem_features.{i}"), stage)?)?;
            let memory = model.store_memory(Memory {
                features,
                pos: pos_enc.clone(),
            })?;
            let out = FrameOutput {
                memory: Some(memory),
                pred_masks: None,
                obj_ptr: fx.input(&format!("prepare_memory.obj_ptr.{i}"), stage)?,
                object_score_logits: Tensor::ones((1, 1), DType::F32, fx.dev)?,
            };
            // the contract: frame 0 is the conditioning frame, the rest are tracked frames
            if i == 0 {
                store.cond_insert(0, out);
            } else {
                store.non_cond.insert(i, out);
            }
        }
        let frame = fx.count("prepare_memory.frame_idx", stage)?;
        let nf = fx.count("prepare_memory.num_frames", stage)?;
        if frame < n_mem || frame >= nf {
            return Err(Error::Input(format!(
                "prepare_memory.frame_idx {frame} must follow the {n_mem} stored frames and lie within {nf} frames"
            )));
        }
        let (mems, ptrs) = store.select(&cfg.tracker, frame, nf, false);
        let feats = FrameFeatures {
            vision_feat: seq_to_map(&fx.input("memattn.curr", stage)?, e, "memattn.curr")?,
            vision_pos: seq_to_map(&fx.input("memattn.curr_pos", stage)?, e, "memattn.curr_pos")?,
            high_res: vec![],
        };
        let got = model.memory_conditioned_features(&feats, false, &mems, &ptrs, nf)?;
        fx.check(stage, &got, Feed::Reference)?;
    }
    Ok(())
}

/// One tracked frame against the official video predictor.
#[derive(Debug, Clone)]
pub struct TrackedFrame {
    /// `point` or `box`
    pub run: String,
    pub frame: usize,
    /// relative L2 of the hole-filled low-res logits
    pub low_res_rel_l2: f64,
    /// IoU of the video-resolution masks (> 0)
    pub iou: f64,
    /// positive-pixel fraction of the reference mask
    pub ref_fg_fraction: f64,
    pub object_score: f32,
    pub ref_object_score: f32,
    /// |ours - ref| / max(|ref|, 1)
    pub object_score_rel: f64,
    pub obj_ptr_rel_l2: f64,
}

/// One prompted run of a video fixture.
#[derive(Debug, Clone)]
pub struct TrackedRun {
    pub run: String,
    pub prompt_frame: usize,
    /// IoU of the mask returned for the prompt itself
    pub prompt_iou: f64,
    /// relative L2 of the low-res logits of every frame together
    pub low_res_rel_l2_all: f64,
    pub frames: Vec<TrackedFrame>,
}

fn iou_host(a: &Tensor, b: &Tensor) -> Result<(f64, f64)> {
    if a.dims() != b.dims() {
        return Err(Error::Other(format!(
            "mask shape {:?} vs reference {:?}",
            a.dims(),
            b.dims()
        )));
    }
    let fg = |t: &Tensor| -> Result<Vec<bool>> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| v > 0.0)
            .collect())
    };
    let (a, b) = (fg(a)?, fg(b)?);
    let (mut inter, mut union, mut nb) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(&b) {
        inter += (x && y) as usize;
        union += (x || y) as usize;
        nb += y as usize;
    }
    let iou = if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    };
    Ok((iou, nb as f64 / b.len().max(1) as f64))
}

fn first_value(t: &Tensor) -> Result<f32> {
    let v = t
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    v.first()
        .copied()
        .ok_or_else(|| Error::Input("empty fixture tensor".into()))
}

/// The frames of a video fixture: Pillow's decoded RGB when the fixture has
/// `pillow_rgb.safetensors` (isolates JPEG decoding), else the JPEGs under `frames/`.
fn fixture_frames(dir: &Path) -> Result<Box<dyn FrameSource>> {
    let rgb_path = dir.join("pillow_rgb.safetensors");
    if rgb_path.is_file() {
        let t = load_safetensors(&rgb_path)?;
        let rgb = t
            .get("rgb")
            .ok_or_else(|| Error::Input(format!("{} has no 'rgb' tensor", rgb_path.display())))?;
        let (n, h, w, c) = rgb.dims4().map_err(|_| {
            Error::Input(format!("{}: rgb must be [N, H, W, 3]", rgb_path.display()))
        })?;
        if c != 3 || rgb.dtype() != DType::U8 {
            return Err(Error::Input(format!(
                "{}: rgb must be u8 [N, H, W, 3], is {:?} {:?}",
                rgb_path.display(),
                rgb.dtype(),
                rgb.dims()
            )));
        }
        let frames = (0..n)
            .map(|i| Ok(rgb.get(i)?.flatten_all()?.to_vec1::<u8>()?))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Box::new(RgbFrames::new(frames, w as u32, h as u32)?));
    }
    Ok(Box::new(VideoFrames::open(dir.join("frames"))?))
}

/// Track every run of a video fixture (`tracking.safetensors`: `point` and/or `box`, names in
/// FIXTURES.md) with a fresh session each, and compare frame by frame. A run yields frames
/// forward from its prompt frame, then backward when the reference went backward too.
pub fn run_tracking(
    cfg: &ModelConfig,
    weights: VarBuilder,
    fixture_dir: &Path,
    device: &Device,
) -> Result<Vec<TrackedRun>> {
    let opts = ModelOptions::default();
    run_tracking_with_frames(cfg, weights, fixture_dir, fixture_dir, device, &opts)
}

/// [`run_tracking`] with the video frames taken from `frames_dir` (its `pillow_rgb.safetensors`,
/// else its `frames/` JPEGs), for video fixtures that reuse another fixture's frames, and the
/// model built with `model_opts` (the CLI's convolution settings).
pub fn run_tracking_with_frames(
    cfg: &ModelConfig,
    weights: VarBuilder,
    fixture_dir: &Path,
    frames_dir: &Path,
    device: &Device,
    model_opts: &ModelOptions,
) -> Result<Vec<TrackedRun>> {
    let t = load_safetensors(&fixture_dir.join("tracking.safetensors"))?;
    let model = Sam2Base::new_with(cfg, model_opts, weights)?;
    let get = |n: &str| -> Result<&Tensor> {
        t.get(n)
            .ok_or_else(|| Error::Input(format!("video fixture has no tensor '{n}'")))
    };
    let host_vec = |n: &str| -> Result<Vec<f32>> {
        Ok(get(n)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    let mut runs = Vec::new();
    for run in ["point", "box"] {
        if !t.contains_key(&format!("{run}.order")) {
            continue;
        }
        let order: Vec<usize> = host_vec(&format!("{run}.order"))?
            .into_iter()
            .map(|v| v as usize)
            .collect();
        let pf = host_vec(&format!("{run}.prompt.frame"))?;
        let prompt_frame = *pf
            .first()
            .ok_or_else(|| Error::Input(format!("{run}.prompt.frame is empty")))?
            as usize;
        let prompt = if run == "box" {
            let b = host_vec("box.prompt.box")?;
            if b.len() != 4 {
                return Err(Error::Input("box.prompt.box must hold 4 numbers".into()));
            }
            Prompt {
                points: vec![],
                bbox: Some([b[0], b[1], b[2], b[3]]),
            }
        } else {
            let c = host_vec("point.prompt.coords")?;
            let l = host_vec("point.prompt.labels")?;
            if c.len() != 2 * l.len() || l.is_empty() {
                return Err(Error::Input(
                    "point.prompt.coords must be [1, N, 2] and labels [1, N]".into(),
                ));
            }
            Prompt {
                points: l
                    .iter()
                    .enumerate()
                    .map(|(i, &lab)| (c[2 * i], c[2 * i + 1], lab as i32))
                    .collect(),
                bbox: None,
            }
        };
        let frames = fixture_frames(frames_dir)?;
        let mut s = Session::with_frames(&model, frames, device, SessionOptions::default());
        let r = s.add_prompt(prompt_frame, 1, &prompt)?;
        let (prompt_iou, _) =
            iou_host(&r.video_res_masks, get(&format!("{run}.prompt.video_res"))?)?;
        let mut results: Vec<FrameResult> = Vec::new();
        s.propagate(Some(prompt_frame), None, false, |r| {
            results.push(r);
            Ok(())
        })?;
        if order.iter().any(|&f| f < prompt_frame) {
            s.propagate(Some(prompt_frame), None, true, |r| {
                results.push(r);
                Ok(())
            })?;
        }
        let got_order: Vec<usize> = results.iter().map(|r| r.frame_idx).collect();
        if got_order != order {
            return Err(Error::Other(format!(
                "{run}: frames yielded in order {got_order:?}, the reference yielded {order:?}"
            )));
        }
        let mut frames_out = Vec::new();
        let (mut num, mut den) = (0f64, 0f64);
        for r in &results {
            let i = r.frame_idx;
            let pre = format!("{run}.frame.{i}");
            let want_low = get(&format!("{pre}.low_res"))?;
            let c = compare(&pre, &r.low_res_masks, want_low, Feed::Image)?;
            // accumulate the all-frames relative L2 from this frame's parts
            let wl = want_low
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
            num += c.rel_l2.powi(2) * if wl == 0.0 { 1.0 } else { wl };
            den += wl;
            let (iou, frac) = iou_host(&r.video_res_masks, get(&format!("{pre}.video_res"))?)?;
            let ref_score = first_value(get(&format!("{pre}.object_score"))?)?;
            let score = r
                .object_score_logits
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| Error::Other(format!("{pre}: the object has no output")))?;
            let ptr = r
                .obj_ptrs
                .first()
                .and_then(|p| p.as_ref())
                .ok_or_else(|| Error::Other(format!("{pre}: the object has no pointer")))?;
            let p = compare(&pre, ptr, get(&format!("{pre}.obj_ptr"))?, Feed::Image)?;
            frames_out.push(TrackedFrame {
                run: run.to_string(),
                frame: i,
                low_res_rel_l2: c.rel_l2,
                iou,
                ref_fg_fraction: frac,
                object_score: score,
                ref_object_score: ref_score,
                object_score_rel: ((score - ref_score).abs() / ref_score.abs().max(1.0)) as f64,
                obj_ptr_rel_l2: p.rel_l2,
            });
        }
        let all = if den == 0.0 {
            num.sqrt()
        } else {
            (num / den).sqrt()
        };
        runs.push(TrackedRun {
            run: run.to_string(),
            prompt_frame,
            prompt_iou,
            low_res_rel_l2_all: all,
            frames: frames_out,
        });
    }
    if runs.is_empty() {
        return Err(Error::Input(format!(
            "{}: the video fixture has neither point.order nor box.order",
            fixture_dir.display()
        )));
    }
    Ok(runs)
}
