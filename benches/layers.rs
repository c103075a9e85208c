//! Per-layer microbenchmarks at the real shapes of a 1024x1024 input, seeded random weights, f32.
//!
//! `cargo bench --bench layers` (CPU), `cargo bench --bench layers --features cudnn` (CPU, then
//! CUDA device 0 when it opens). Filter with a regex on `group/device/case`, e.g.
//! `cargo bench --bench layers -- 'hiera_block/cpu/stage3'` or `-- /cuda/`; add `--quick` for one
//! short measurement per case. docs/performance.md ("Per-layer microbenchmarks") has the numbers.
//!
//! Every case reports its time and, as criterion's throughput in "elements", the floating-point
//! operations of one call: read `Gelem/s` as GFLOP/s. FLOPs are counted analytically, 2 per
//! multiply-add of every matmul and convolution (attention: the projections plus the `QK^T` and
//! `AV` products); norms, activations, softmax, RoPE, pooling, resizing and copies are not
//! counted, so memory-bound cases show a low rate by construction. Each group's doc comment says
//! what it counts.
//!
//! Timing: the module and its inputs are built once per case (outside the timed region) and run
//! once untimed (caches, tables, kernel loading, cuDNN algorithm choice); every timed call ends
//! with `Device::synchronize`, so queued GPU work is inside the measurement.

use candle_core::{DType, Device, Module, Result as CResult, Tensor};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vosbench::config::{HieraConfig, ModelConfig, Registry, RepVitConfig, TrunkConfig};
use vosbench::cuda::tuning::{ConvOptions, ConvTuner};
use vosbench::exec::ExecCtx;
use vosbench::nn::conv::Conv2d;
use vosbench::nn::ModelOptions;
use vosbench::sam2::backbones::hieradet::{block_layout, MultiScaleBlock};
use vosbench::sam2::backbones::image_encoder::FpnNeck;
use vosbench::sam2::backbones::repvit::RepVit;
use vosbench::sam2::mask_decoder::MaskDecoder;
use vosbench::sam2::memory_attention::MemoryAttentionLayer;
use vosbench::sam2::memory_encoder::MemoryEncoder;
use vosbench::sam2::perceiver::PerceiverResampler;
use vosbench::sam2::prompt_encoder::PromptEncoder;
use vosbench::weights::random::random_var_builder;

/// The SAM 2.1 variant whose layers are measured (`LAYERS_SAM2_MODEL` overrides it).
const DEFAULT_SAM2: &str = "sam2.1_hiera_base_plus";
const SEED: u64 = 0;
const DT: DType = DType::F32;

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn registry_model(name: &str) -> ModelConfig {
    Registry::builtin()
        .and_then(|r| r.resolve(name))
        .unwrap_or_else(|e| panic!("model config '{name}': {e}"))
}

fn sam2_config() -> ModelConfig {
    let name = std::env::var("LAYERS_SAM2_MODEL").unwrap_or_else(|_| DEFAULT_SAM2.to_string());
    registry_model(&name)
}

fn edgetam_config() -> ModelConfig {
    registry_model("edgetam")
}

fn hiera(cfg: &ModelConfig) -> &HieraConfig {
    match &cfg.image_encoder.trunk {
        TrunkConfig::Hiera(h) => h,
        TrunkConfig::Repvit(_) => panic!("{} has no Hiera trunk", cfg.name),
    }
}

fn repvit(cfg: &ModelConfig) -> &RepVitConfig {
    match &cfg.image_encoder.trunk {
        TrunkConfig::Repvit(r) => r,
        TrunkConfig::Hiera(_) => panic!("{} has no RepViT trunk", cfg.name),
    }
}

/// CPU always; CUDA device 0 too in `cuda` builds, when it opens.
fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut v = vec![Device::Cpu];
    #[cfg(feature = "cuda")]
    match vosbench::cuda::open_cuda(0) {
        Ok(d) => v.push(d),
        Err(e) => eprintln!("layers bench: CUDA device 0 did not open ({e}); CPU only"),
    }
    v
}

fn dev_name(d: &Device) -> &'static str {
    if d.is_cuda() {
        "cuda"
    } else {
        "cpu"
    }
}

fn randn(shape: &[usize], std: f64, dev: &Device) -> CResult<Tensor> {
    Tensor::randn(0f32, std as f32, shape, dev)?.to_dtype(DT)
}

fn sync(dev: &Device) {
    dev.synchronize().expect("device synchronize");
}

/// One case: `setup` builds the module and inputs the first time criterion calls the case (so
/// filtered-out cases cost nothing), `run` is one call; it runs once untimed, then timed, each
/// timed call ending with a device synchronisation.
fn bench_case<S, T>(
    g: &mut BenchmarkGroup<WallTime>,
    dev: &Device,
    id: String,
    flops: u64,
    setup: impl FnOnce() -> anyhow::Result<S>,
    run: impl Fn(&S) -> CResult<T>,
) -> bool {
    let mut setup = Some(setup);
    let mut state: Option<S> = None;
    g.throughput(Throughput::Elements(flops));
    g.bench_function(id.clone(), |b| {
        let s = state.get_or_insert_with(|| {
            let build = setup.take().expect("case set up once");
            let s = build().unwrap_or_else(|e| panic!("{id}: setup failed: {e:#}"));
            let _ = run(&s).unwrap_or_else(|e| panic!("{id}: first call failed: {e}"));
            sync(dev);
            s
        });
        b.iter(|| {
            let y = run(s).expect("forward");
            sync(dev);
            y
        })
    });
    state.is_some()
}

/// `2 * rows * k * n`: one matmul (or linear layer) `[rows, k] x [k, n]`.
fn mm(rows: usize, k: usize, n: usize) -> u64 {
    2 * (rows as u64) * (k as u64) * (n as u64)
}

/// A convolution: `2 * Cout * Ho * Wo * (Cin / groups) * k * k`.
fn conv_flops(cin: usize, cout: usize, k: usize, groups: usize, ho: usize, wo: usize) -> u64 {
    2 * (cout * ho * wo) as u64 * (cin / groups * k * k) as u64
}

/// `conv_out(size, k, stride, pad)`: output side of a convolution.
fn conv_out(i: usize, k: usize, s: usize, p: usize) -> usize {
    (i + 2 * p - k) / s + 1
}

/// SAM `Attention`: q projection of `nq` tokens, k and v projections of `nk` tokens (input width
/// `c_kv`), `QK^T` and `AV` at the internal width, output projection.
fn attn_flops(nq: usize, nk: usize, c_q: usize, c_kv: usize, internal: usize, c_out: usize) -> u64 {
    mm(nq, c_q, internal)
        + 2 * mm(nk, c_kv, internal)
        + 2 * mm(nq, internal, nk)
        + mm(nq, internal, c_out)
}

fn criterion_config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    // Most cases take tens of milliseconds to seconds per call on CPU: one call per sample.
    g.sampling_mode(SamplingMode::Flat);
    g
}

// ---------------------------------------------------------------------------------------------
// SAM 2.1

/// `hiera_block`: one `MultiScaleBlock` of the SAM 2.1 trunk per stage (the first windowed block
/// that is not a q-pool block), plus the first global-attention block of every stage that has one
/// (base_plus: stage 3), at its 1024-input map (stage k: `256 / 2^(k-1)` square), channel-last.
/// Built exactly as `Hiera::new` does (heads, window, MLP ratio from the variant file). The global
/// blocks run unchunked, as the trunk does.
///
/// FLOPs with N = H*W tokens of width C: qkv `6NC^2` + proj `2NC^2` + MLP `2 * 2 N C (r C)` +
/// attention `4 T^2 C` per window of T = ws^2 tokens over the padded window grid (global:
/// `4 N^2 C`).
fn hiera_blocks(c: &mut Criterion) {
    let cfg = sam2_config();
    let h = hiera(&cfg).clone();
    let (specs, ends) = block_layout(&h).expect("hiera layout");
    let side0 = cfg.image_size / 4;
    let mut cases = Vec::new();
    for (k, &end) in ends.iter().enumerate() {
        let start = if k == 0 { 0 } else { ends[k - 1] + 1 };
        let stage: Vec<usize> = (start..=end)
            .filter(|&i| !specs[i].q_pool && specs[i].dim == specs[i].dim_out)
            .collect();
        if let Some(&i) = stage.iter().find(|&&i| specs[i].window_size > 0) {
            cases.push((k, i));
        }
        if let Some(&i) = stage.iter().find(|&&i| specs[i].window_size == 0) {
            cases.push((k, i));
        }
    }
    let mut g = group(c, "hiera_block");
    for dev in devices() {
        for &(k, i) in &cases {
            let s = specs[i];
            let side = side0 >> k;
            let n = side * side;
            let cdim = s.dim;
            let hidden = (cdim as f64 * h.mlp_ratio) as usize;
            let attn = if s.window_size > 0 {
                let ws = s.window_size;
                let nwin = side.div_ceil(ws).pow(2);
                nwin as u64 * 2 * mm(ws * ws, cdim, ws * ws)
            } else {
                2 * mm(n, cdim, n)
            };
            let flops = mm(n, cdim, 3 * cdim) + mm(n, cdim, cdim) + 2 * mm(n, cdim, hidden) + attn;
            let kind = match s.window_size {
                0 => "global".to_string(),
                w => format!("window{w}"),
            };
            let id = format!(
                "{}/stage{}_{kind}_blk{i}_{cdim}ch_{}heads_{side}x{side}",
                dev_name(&dev),
                k + 1,
                s.num_heads
            );
            let d = dev.clone();
            let mlp_ratio = h.mlp_ratio;
            bench_case(
                &mut g,
                &dev,
                id,
                flops,
                move || {
                    let vb = random_var_builder(SEED, DT, &d);
                    let blk = MultiScaleBlock::new(
                        s.dim,
                        s.dim_out,
                        s.num_heads,
                        mlp_ratio,
                        None,
                        s.window_size,
                        &ModelOptions::default(),
                        vb.pp("image_encoder.trunk.blocks").pp(i),
                    )?;
                    Ok((blk, randn(&[1, side, side, cdim], 1.0, &d)?))
                },
                |(blk, x)| blk.forward(x),
            );
        }
    }
    g.finish();
}

/// `fpn_neck`: `FpnNeck` on the four trunk levels of a 1024 input (SAM 2.1 Hiera channels, and
/// EdgeTAM's RepViT channels), lateral 1x1 convs, nearest top-down on the configured levels, sine
/// position encodings of every level. FLOPs: the lateral convs, `2 * d_model * C_k * H_k * W_k`
/// summed over the levels.
fn fpn_neck(c: &mut Criterion) {
    let mut g = group(c, "fpn_neck");
    for dev in devices() {
        for cfg in [sam2_config(), edgetam_config()] {
            let neck = cfg.image_encoder.neck.clone();
            let side0 = cfg.image_size / 4;
            // backbone_channel_list is lowest resolution first.
            let chans: Vec<usize> = neck.backbone_channel_list.iter().rev().copied().collect();
            let flops: u64 = chans
                .iter()
                .enumerate()
                .map(|(k, &ch)| conv_flops(ch, neck.d_model, 1, 1, side0 >> k, side0 >> k))
                .sum();
            let id = format!(
                "{}/{}_{}",
                dev_name(&dev),
                cfg.name,
                chans
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            );
            let d = dev.clone();
            bench_case(
                &mut g,
                &dev,
                id,
                flops,
                move || {
                    let vb = random_var_builder(SEED, DT, &d);
                    let m = FpnNeck::new(
                        &neck,
                        &ModelOptions::default(),
                        vb.pp("image_encoder").pp("neck"),
                    )?;
                    let xs = chans
                        .iter()
                        .enumerate()
                        .map(|(k, &ch)| randn(&[1, ch, side0 >> k, side0 >> k], 1.0, &d))
                        .collect::<CResult<Vec<_>>>()?;
                    Ok((m, xs))
                },
                |(m, xs)| m.forward(xs),
            );
        }
    }
    g.finish();
}

/// `prompt_encoder`: `PromptEncoder::forward` with one positive click (sparse embedding plus the
/// broadcast `no_mask_embed`), and with a 256x256 mask prompt too (the `mask_downscaling` convs).
/// FLOPs: the random-Fourier projection `[N+1, 2] x [2, C/2]` and the mask convs (2x2 s2 1->4,
/// 2x2 s2 4->16, 1x1 16->256). The click case is overhead-bound: its rate means little.
fn prompt_encoder(c: &mut Criterion) {
    let cfg = sam2_config();
    let cdim = cfg.hidden_dim();
    let e = cfg.embedding_size();
    let mic = cfg.prompt_encoder.mask_in_chans;
    let pts = mm(2, 2, cdim / 2);
    let mask = conv_flops(1, mic / 4, 2, 1, 2 * e, 2 * e)
        + conv_flops(mic / 4, mic, 2, 1, e, e)
        + conv_flops(mic, cdim, 1, 1, e, e);
    let mut g = group(c, "prompt_encoder");
    for dev in devices() {
        for with_mask in [false, true] {
            let id = format!(
                "{}/{}",
                dev_name(&dev),
                if with_mask {
                    format!("click_and_mask_{}x{}", 4 * e, 4 * e)
                } else {
                    "one_click".to_string()
                }
            );
            let flops = pts + if with_mask { mask } else { 0 };
            let d = dev.clone();
            let cfg = cfg.clone();
            bench_case(
                &mut g,
                &dev,
                id,
                flops,
                move || {
                    let vb = random_var_builder(SEED, DT, &d);
                    let pe = PromptEncoder::new(
                        &cfg,
                        &ModelOptions::default(),
                        vb.pp("sam_prompt_encoder"),
                    )?;
                    let coords = Tensor::new(&[[[412f32, 587.0]]], &d)?;
                    let labels = Tensor::new(&[[1f32]], &d)?;
                    let m = if with_mask {
                        Some(randn(&[1, 1, 4 * e, 4 * e], 4.0, &d)?)
                    } else {
                        None
                    };
                    Ok((pe, coords, labels, m))
                },
                |(pe, coords, labels, m)| pe.forward(Some((coords, labels)), m.as_ref()),
            );
        }
    }
    g.finish();
}

/// `mask_decoder`: `MaskDecoder::forward` (multimask, as on a click frame and while tracking) on
/// a 64x64 image embedding with high-resolution features (`[1, C/8, 256, 256]`,
/// `[1, C/4, 128, 128]`) and one click (8 tokens: object score, IoU, 4 mask tokens, click, pad).
///
/// FLOPs: per two-way block the token self-attention, token-to-image and image-to-token
/// attentions (internal width C/2) and the token MLP; the final token-to-image attention; the two
/// 2x2 transposed convs; the hypernetwork MLPs, the mask product `[4, C/8] x [C/8, 256^2]` and
/// the IoU / object-score heads.
fn mask_decoder(c: &mut Criterion) {
    let cfg = sam2_config();
    let cdim = cfg.hidden_dim();
    let e = cfg.embedding_size();
    let md = &cfg.mask_decoder;
    let k = e * e;
    let nmask = md.num_multimask_outputs + 1;
    let t = 1 + 1 + nmask + 2;
    let ci = cdim / md.attention_downsample_rate;
    let block = attn_flops(t, t, cdim, cdim, cdim, cdim)
        + attn_flops(t, k, cdim, cdim, ci, cdim)
        + 2 * mm(t, cdim, md.transformer_mlp_dim)
        + attn_flops(k, t, cdim, cdim, ci, cdim);
    let up = mm(k, cdim, cdim / 4 * 4) + mm(4 * k, cdim / 4, cdim / 8 * 4);
    let heads = nmask as u64 * (2 * mm(1, cdim, cdim) + mm(1, cdim, cdim / 8))
        + mm(nmask, cdim / 8, 16 * k)
        + mm(1, cdim, md.iou_head_hidden_dim)
        + mm(1, md.iou_head_hidden_dim, md.iou_head_hidden_dim)
        + mm(1, md.iou_head_hidden_dim, nmask)
        + 2 * mm(1, cdim, cdim)
        + mm(1, cdim, 1);
    let flops =
        md.transformer_depth as u64 * block + attn_flops(t, k, cdim, cdim, ci, cdim) + up + heads;
    let mut g = group(c, "mask_decoder");
    for dev in devices() {
        let id = format!("{}/multimask_one_click_{e}x{e}_high_res", dev_name(&dev));
        let d = dev.clone();
        let cfg = cfg.clone();
        bench_case(
            &mut g,
            &dev,
            id,
            flops,
            move || {
                let vb = random_var_builder(SEED, DT, &d);
                let pe = PromptEncoder::new(
                    &cfg,
                    &ModelOptions::default(),
                    vb.pp("sam_prompt_encoder"),
                )?;
                let dec =
                    MaskDecoder::new(&cfg, &ModelOptions::default(), vb.pp("sam_mask_decoder"))?;
                let coords = Tensor::new(&[[[412f32, 587.0]]], &d)?;
                let labels = Tensor::new(&[[1f32]], &d)?;
                let (sparse, dense) = pe.forward(Some((&coords, &labels)), None)?;
                let img = randn(&[1, cdim, e, e], 1.0, &d)?;
                let s0 = randn(&[1, cdim / 8, 4 * e, 4 * e], 1.0, &d)?;
                let s1 = randn(&[1, cdim / 4, 2 * e, 2 * e], 1.0, &d)?;
                Ok((dec, pe.get_dense_pe(), img, sparse, dense, s0, s1))
            },
            |(dec, pe, img, sparse, dense, s0, s1)| {
                dec.forward(img, pe, sparse, dense, true, false, Some((s0, s1)))
                    .map(|o| o.masks)
            },
        );
    }
    g.finish();
}

/// `memory_encoder`: `MemoryEncoder::forward` on a `[1, 256, 64, 64]` frame feature and a
/// `[1, 1, 1024, 1024]` mask (already scaled, as `encode_new_memory` passes it). Identical in
/// SAM 2.1 and EdgeTAM.
///
/// FLOPs: the mask downsampler's 3x3 stride-2 convs (1->4->16->64->256) and its 1x1 projection,
/// `pix_feat_proj`, per fuser CXBlock the 7x7 depthwise conv and the two pointwise linears
/// (C -> 4C -> C), and `out_proj` (256 -> 64).
fn memory_encoder(c: &mut Criterion) {
    let cfg = sam2_config();
    let me = cfg.memory_encoder.clone();
    let s = cfg.image_size;
    let e = cfg.embedding_size();
    let ds = &me.mask_downsampler;
    let mut flops = 0u64;
    let (mut cin, mut side) = (1usize, s);
    while side > e {
        let cout = cin * ds.stride * ds.stride;
        side = conv_out(side, ds.kernel_size, ds.stride, ds.padding);
        flops += conv_flops(cin, cout, ds.kernel_size, 1, side, side);
        cin = cout;
    }
    flops += conv_flops(cin, ds.embed_dim, 1, 1, e, e);
    flops += conv_flops(me.in_dim, me.in_dim, 1, 1, e, e);
    let f = &me.fuser;
    flops += f.num_layers as u64
        * (conv_flops(f.dim, f.dim, f.kernel_size, f.dim, e, e) + 2 * mm(e * e, f.dim, 4 * f.dim));
    if me.out_dim != me.in_dim {
        flops += conv_flops(me.in_dim, me.out_dim, 1, 1, e, e);
    }
    let mut g = group(c, "memory_encoder");
    for dev in devices() {
        let id = format!("{}/feat_{}x{e}x{e}_mask_{s}x{s}", dev_name(&dev), me.in_dim);
        let d = dev.clone();
        let me = me.clone();
        bench_case(
            &mut g,
            &dev,
            id,
            flops,
            move || {
                let vb = random_var_builder(SEED, DT, &d);
                let enc =
                    MemoryEncoder::new(&me, &ModelOptions::default(), vb.pp("memory_encoder"))?;
                let feat = randn(&[1, me.in_dim, e, e], 1.0, &d)?;
                let mask = randn(&[1, 1, s, s], 10.0, &d)?;
                Ok((enc, feat, mask))
            },
            |(enc, feat, mask)| enc.forward(feat, mask, true),
        );
    }
    g.finish();
}

/// `memory_attention_layer`: one `MemoryAttentionLayer` (the per-layer entry point; the module
/// stacks 4 for SAM 2.1, 2 for EdgeTAM) with a full bank: 4096 queries (64x64) of width 256 against
/// 7 memory frames plus 16 object pointers split into 64 tokens of width 64. SAM 2.1: 4096 tokens
/// per frame (28736 keys); EdgeTAM: 512 perceiver latents per frame (3648 keys). Query chunk 1024,
/// the module's default.
///
/// FLOPs (N queries, M keys, C = 256, Cm = 64): self-attention `4 * 2NC^2 + 4N^2C`,
/// cross-attention `2 * 2NC^2 + 2 * 2MCmC + 4NMC`, FFN `2 * 2NCF` (F = 2048).
fn memory_attention(c: &mut Criterion) {
    let mut g = group(c, "memory_attention_layer");
    for dev in devices() {
        for (cfg, per_frame) in [(sam2_config(), None), (edgetam_config(), Some(512usize))] {
            let ma = cfg.memory_attention.clone();
            let e = cfg.embedding_size();
            let n = e * e;
            let frames = cfg.tracker.num_maskmem;
            let cdim = ma.d_model;
            let cm = cfg.mem_dim();
            let split = (cdim / cm).max(1);
            let ptr_tokens = cfg.tracker.max_obj_ptrs_in_encoder * split;
            let per_frame = per_frame.unwrap_or(n);
            let m = frames * per_frame + ptr_tokens;
            let sa = &ma.self_attention;
            let ca = &ma.cross_attention;
            let si = cdim / sa.downsample_rate;
            let xi = cdim / ca.downsample_rate;
            let kv = ca.kv_in_dim.unwrap_or(cdim);
            let flops = attn_flops(n, n, cdim, cdim, si, cdim)
                + attn_flops(n, m, cdim, kv, xi, cdim)
                + 2 * mm(n, cdim, ma.dim_feedforward);
            let id = format!(
                "{}/{}_{n}q_{frames}x{per_frame}+{ptr_tokens}ptr_{m}k",
                dev_name(&dev),
                cfg.name
            );
            let d = dev.clone();
            bench_case(
                &mut g,
                &dev,
                id,
                flops,
                move || {
                    let vb = random_var_builder(SEED, DT, &d);
                    let layer = MemoryAttentionLayer::new(
                        &ma,
                        &ModelOptions::default(),
                        vb.pp("memory_attention.layers").pp(0),
                    )?;
                    let tgt = randn(&[1, n, cdim], 1.0, &d)?;
                    let qpos = randn(&[1, n, cdim], 1.0, &d)?;
                    let mem = randn(&[1, m, kv], 1.0, &d)?;
                    let mpos = randn(&[1, m, kv], 1.0, &d)?;
                    Ok((layer, tgt, mem, mpos, qpos))
                },
                move |(layer, tgt, mem, mpos, qpos)| {
                    let ctx = ExecCtx::default();
                    layer.forward(tgt, mem, mpos, qpos, ptr_tokens, Some(frames), &ctx)
                },
            );
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// EdgeTAM

/// timm `make_divisible(c * ratio, 8)`: the SE width of a RepViT block.
fn se_width(c: usize, ratio: f64) -> usize {
    ((((c as f64 * ratio) + 4.0) as usize) / 8 * 8).max(8)
}

/// Runs a truncated trunk and returns the time between the output just before
/// `trunk.stages.{stage}.blocks.0` and `trunk.stages.{stage}.blocks.1` (synchronising at both).
fn time_block_pair(trunk: &RepVit, x: &Tensor, stage: usize) -> Duration {
    let mut marks: Vec<(String, Instant)> = Vec::with_capacity(8);
    trunk
        .forward_with_taps(x, &mut |name, t| {
            sync(t.device());
            marks.push((name.to_string(), Instant::now()));
        })
        .expect("repvit forward");
    let first = format!("trunk.stages.{stage}.blocks.0");
    let last = format!("trunk.stages.{stage}.blocks.1");
    let i = marks
        .iter()
        .position(|(n, _)| *n == first)
        .expect("first block tap");
    let j = marks
        .iter()
        .position(|(n, _)| *n == last)
        .expect("second block tap");
    marks[j].1 - marks[i - 1].1
}

/// `repvit_block`: EdgeTAM's RepViT-M1 (BatchNorm folded, as loaded), one pair of blocks per
/// stage at its 1024-input map (stage k: `256 / 2^(k-1)` square, 48/96/192/384 channels): the
/// block with squeeze-excite and the one without, which every stage alternates. The blocks are
/// private to the trunk, so each case builds the trunk truncated to that stage with two blocks
/// (earlier stages keep only their downsample) and times, through `forward_with_taps` with a
/// device synchronisation at every tap, just the two blocks.
///
/// FLOPs per block (C channels, HW pixels): token mixer, one folded 3x3 depthwise conv
/// `2 * 9 C HW`; channel mixer 1x1 convs C -> 2C -> C `8 C^2 HW`; SE `2 * 2 C rd` (first block).
fn repvit_blocks(c: &mut Criterion) {
    let cfg = edgetam_config();
    let rv = repvit(&cfg).clone();
    let side0 = cfg.image_size / 4;
    let mut g = group(c, "repvit_block");
    for dev in devices() {
        for (k, &ch) in rv.embed_dims.iter().enumerate() {
            let side = side0 >> k;
            let hidden = (ch as f64 * rv.mlp_ratio) as usize;
            let one = conv_flops(ch, ch, rv.kernel_size, ch, side, side)
                + conv_flops(ch, hidden, 1, 1, side, side)
                + conv_flops(hidden, ch, 1, 1, side, side);
            let flops = 2 * one + 2 * mm(1, ch, se_width(ch, rv.se_ratio));
            let id = format!(
                "{}/stage{}_pair_se+plain_{ch}ch_{side}x{side}",
                dev_name(&dev),
                k + 1
            );
            let mut trunc = rv.clone();
            trunc.embed_dims.truncate(k + 1);
            trunc.depths = vec![0; k + 1];
            trunc.depths[k] = 2;
            let d = dev.clone();
            let mut state: Option<(RepVit, Tensor)> = None;
            g.throughput(Throughput::Elements(flops));
            g.bench_function(id.clone(), |b| {
                let (trunk, x) = state.get_or_insert_with(|| {
                    let vb = random_var_builder(SEED, DT, &d);
                    let trunk = RepVit::new(
                        &trunc,
                        &ModelOptions::default(),
                        vb.pp("image_encoder.trunk"),
                    )
                    .unwrap_or_else(|e| panic!("{id}: {e}"));
                    let x = randn(&[1, 3, cfg.image_size, cfg.image_size], 1.0, &d).expect("input");
                    time_block_pair(&trunk, &x, k);
                    (trunk, x)
                });
                b.iter_custom(|iters| (0..iters).map(|_| time_block_pair(trunk, x, k)).sum())
            });
        }
    }
    g.finish();
}

/// `perceiver`: EdgeTAM's `PerceiverResampler::forward` on one 64x64 memory of width 64 with its
/// position encoding: 256 global latents over all 4096 tokens and 256 window latents (one per 4x4
/// window), 2 layers each.
///
/// FLOPs per layer and path (B batches of Nl latents over Nx tokens, width D = inner = 64, FF
/// multiplier 4): cross-attention `q 2NlD^2 + kv 4NxD^2 + 4NlNxD + out 2NlD^2`, FF `16NlD^2`,
/// self-attention `8NlD^2 + 4Nl^2D`, self FF `16NlD^2`; 1D path B = 1, Nl = 256, Nx = 4096;
/// 2D path B = 256, Nl = 1, Nx = 16.
fn perceiver(c: &mut Criterion) {
    let cfg = edgetam_config();
    let p = cfg
        .spatial_perceiver
        .clone()
        .expect("edgetam has a perceiver");
    let e = cfg.embedding_size();
    let inner = p.dim_head * p.heads;
    let layer = |b: usize, nl: usize, nx: usize| -> u64 {
        let d = p.dim;
        let ff = 2 * mm(nl, d, d * p.ff_mult);
        let cross = attn_flops(nl, nx, d, d, inner, d);
        let selfa = if p.use_self_attn {
            attn_flops(nl, nl, d, d, inner, d) + ff
        } else {
            0
        };
        b as u64 * (cross + ff + selfa)
    };
    let nw = (p.num_latents_2d as f64).sqrt() as usize;
    let ws = e / nw.max(1);
    let mut flops = 0;
    if p.num_latents > 0 {
        flops += p.depth as u64 * layer(1, p.num_latents, e * e);
    }
    if p.num_latents_2d > 0 {
        flops += p.depth as u64 * layer(p.num_latents_2d, 1, ws * ws);
    }
    let mut g = group(c, "perceiver");
    for dev in devices() {
        let id = format!(
            "{}/memory_{}x{e}x{e}_{}+{}latents",
            dev_name(&dev),
            p.dim,
            p.num_latents,
            p.num_latents_2d
        );
        let d = dev.clone();
        let p = p.clone();
        bench_case(
            &mut g,
            &dev,
            id,
            flops,
            move || {
                let vb = random_var_builder(SEED, DT, &d);
                let m = PerceiverResampler::new(
                    &p,
                    &ModelOptions::default(),
                    vb.pp("spatial_perceiver"),
                )?;
                let x = randn(&[1, p.dim, e, e], 1.0, &d)?;
                let pos = randn(&[1, p.dim, e, e], 1.0, &d)?;
                Ok((m, x, pos))
            },
            |(m, x, pos)| m.forward(x, pos),
        );
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Convolution ops

/// One convolution shape (square kernel and input, batch 1).
#[derive(Debug, Clone, Copy)]
struct ConvCase {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    side: usize,
}

impl ConvCase {
    #[allow(clippy::too_many_arguments)]
    const fn new(
        name: &'static str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        side: usize,
    ) -> Self {
        Self {
            name,
            cin,
            cout,
            k,
            stride,
            pad,
            groups,
            side,
        }
    }

    fn out_side(&self) -> usize {
        conv_out(self.side, self.k, self.stride, self.pad)
    }

    fn flops(&self) -> u64 {
        let o = self.out_side();
        conv_flops(self.cin, self.cout, self.k, self.groups, o, o)
    }

    /// Random weight, bias and input on `dev`; the convolution runs with `tuner`'s choices.
    fn build(&self, dev: &Device, tuner: Arc<ConvTuner>) -> anyhow::Result<(Conv2d, Tensor)> {
        let w = randn(
            &[self.cout, self.cin / self.groups, self.k, self.k],
            0.1,
            dev,
        )?;
        let b = randn(&[self.cout], 0.02, dev)?;
        let cfg = candle_nn::Conv2dConfig {
            padding: self.pad,
            stride: self.stride,
            groups: self.groups,
            ..Default::default()
        };
        let conv = Conv2d::from_parts(w, Some(b), cfg, tuner)?;
        let x = randn(&[1, self.cin, self.side, self.side], 1.0, dev)?;
        Ok((conv, x))
    }
}

const CONV_CASES: [ConvCase; 8] = [
    ConvCase::new("hiera_patch_embed_7x7s4_3to112", 3, 112, 7, 4, 3, 1, 1024),
    ConvCase::new("maskds0_3x3s2_1to4", 1, 4, 3, 2, 1, 1, 1024),
    ConvCase::new("maskds1_3x3s2_4to16", 4, 16, 3, 2, 1, 1, 512),
    ConvCase::new("maskds2_3x3s2_16to64", 16, 64, 3, 2, 1, 1, 256),
    ConvCase::new("maskds3_3x3s2_64to256", 64, 256, 3, 2, 1, 1, 128),
    ConvCase::new("repvit_stem1_3x3s2_3to24", 3, 24, 3, 2, 1, 1, 1024),
    ConvCase::new("repvit_stem2_3x3s2_24to48", 24, 48, 3, 2, 1, 1, 512),
    ConvCase::new("fuser_dw7x7_256", 256, 256, 7, 1, 3, 256, 64),
];

/// `conv`: `vosbench::nn::conv::Conv2d` (the one convolution every model conv goes through) at
/// the shapes of the Hiera patch embedding (7x7 stride 4, 3 -> 112 at 1024), the memory
/// encoder's mask downsampler (3x3 stride 2), the RepViT stem and the fuser's 7x7 depthwise conv.
/// On CPU and in `cuda` builds without cuDNN this is candle's convolution (the depthwise path is
/// vosbench's tap sum). In `cudnn` builds each CUDA shape runs twice: `heuristic` (cuDNN's ranked
/// choice within the workspace limit, `tune: false`) and `tuned` (`tune: true`, timed search),
/// each with a fresh tuner so the untimed first call makes the choice; the choice is printed to
/// stderr. FLOPs: `2 * Cout * Ho * Wo * Cin/groups * k^2`.
fn conv_ops(c: &mut Criterion) {
    let mut g = group(c, "conv");
    for dev in devices() {
        let modes: &[&str] = if dev.is_cuda() && cfg!(feature = "cudnn") {
            &["heuristic", "tuned"]
        } else {
            &["default"]
        };
        for case in CONV_CASES {
            for &mode in modes {
                let (s, o) = (case.side, case.out_side());
                let id = format!("{}/{mode}/{}_{s}x{s}_to_{o}x{o}", dev_name(&dev), case.name);
                let d = dev.clone();
                // cuDNN algorithm selection (cudnn builds): the heuristic, or the timed search.
                let tuner = Arc::new(ConvTuner::new(ConvOptions {
                    tune: mode == "tuned",
                    ..ConvOptions::default()
                }));
                let t = tuner.clone();
                let ran = bench_case(
                    &mut g,
                    &dev,
                    id,
                    case.flops(),
                    move || case.build(&d, t.clone()),
                    |(conv, x)| conv.forward(x),
                );
                if ran {
                    report_conv_choice(mode, &tuner);
                }
            }
        }
    }
    g.finish();
}

/// Print the algorithm the case just measured ran (cudnn builds).
fn report_conv_choice(mode: &str, tuner: &ConvTuner) {
    let t = tuner.table();
    if mode != "default" && !t.entries.is_empty() {
        eprintln!("conv {mode}:\n{}", t.render());
    }
}

/// `depthwise_conv`: a depthwise convolution as one op (`vosbench::nn::conv::Conv2d`: the tap sum
/// on CPU, cuDNN's native groups in cudnn builds) against candle's `Tensor::conv2d(.., groups =
/// C)`, which runs one convolution per channel, then adds the bias. Shapes: the memory encoder
/// fuser's 7x7 (256 channels, 64x64) and the RepViT token mixers' 3x3 of stages 1 and 2 (48
/// channels at 256x256, 96 at 128x128). FLOPs: `2 * C * Ho * Wo * k^2`.
fn depthwise(c: &mut Criterion) {
    let cases: [(&str, usize, usize, usize); 3] = [
        ("fuser_7x7", 256, 7, 64),
        ("repvit_stage1_3x3", 48, 3, 256),
        ("repvit_stage2_3x3", 96, 3, 128),
    ];
    let mut g = group(c, "depthwise_conv");
    for dev in devices() {
        for &(name, ch, k, side) in &cases {
            let flops = conv_flops(ch, ch, k, ch, side, side);
            for one_op in [true, false] {
                let id = format!(
                    "{}/{}/{name}_{ch}ch_{side}x{side}",
                    dev_name(&dev),
                    if one_op {
                        "vosbench_one_op"
                    } else {
                        "candle_per_channel"
                    }
                );
                let d = dev.clone();
                bench_case(
                    &mut g,
                    &dev,
                    id,
                    flops,
                    move || {
                        ConvCase::new(name, ch, ch, k, 1, k / 2, ch, side)
                            .build(&d, Default::default())
                    },
                    move |(conv, x)| {
                        if one_op {
                            conv.forward(x)
                        } else {
                            let cfg = conv.config();
                            let bias = conv.bias().expect("bias").reshape((1, ch, 1, 1))?;
                            x.conv2d(conv.weight(), cfg.padding, cfg.stride, cfg.dilation, ch)?
                                .broadcast_add(&bias)
                        }
                    },
                );
            }
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Attention kernel

/// `sdpa`: `nn::attention::sdpa` alone (fused kernel on CUDA where it covers the inputs, the
/// unfused path elsewhere) at the shapes of a 1024 input: memory attention's cross-attention with
/// a full bank and its self-attention (head dim 256), Hiera-T and Hiera-B+ global attention, in
/// f32 and bf16. FLOPs: `4 * B*H * Nq * Nk * D` (`QK^T` and `AV`). On CPU the query count is a
/// quarter (the unfused path at full size takes seconds per call); the case name gives the shape.
fn sdpa_kernel(c: &mut Criterion) {
    let mut g = group(c, "sdpa");
    const SHAPES: [(&str, [usize; 4]); 4] = [
        ("memory_cross", [1, 4096, 28736, 256]),
        ("memory_self", [1, 4096, 4096, 256]),
        ("hiera_t_global", [4, 4096, 4096, 96]),
        ("hiera_bplus_global", [8, 4096, 4096, 56]),
    ];
    for dev in devices() {
        for (name, [bh, nq, nk, d]) in SHAPES {
            let nq = if dev.is_cuda() { nq } else { nq / 4 };
            for dtype in [DType::F32, DType::BF16] {
                let id = format!(
                    "{}/{name}/{}x{nq}x{nk}x{d}/{}",
                    dev_name(&dev),
                    bh,
                    if dtype == DType::F32 { "f32" } else { "bf16" }
                );
                let flops = 4 * (bh * nq) as u64 * nk as u64 * d as u64;
                let dev2 = dev.clone();
                bench_case(
                    &mut g,
                    &dev,
                    id,
                    flops,
                    move || {
                        let t = |n: usize| -> anyhow::Result<Tensor> {
                            Ok(Tensor::randn(0f32, 1f32, (1, bh, n, d), &dev2)?.to_dtype(dtype)?)
                        };
                        Ok((t(nq)?, t(nk)?, t(nk)?))
                    },
                    |(q, k, v)| vosbench::nn::attention::sdpa(q, k, v, Some(1024), true),
                );
            }
        }
    }
    g.finish();
}

/// `elementwise`: vosbench's memory-bound kernels through their `nn` entry points (the CUDA
/// kernel where it applies, candle's ops on CPU) at model shapes, in bf16 on CUDA and f32 on CPU.
/// Throughput is the bytes one call must read and write at least (input and output once), so
/// read `GiB/s` against the device's memory bandwidth.
fn elementwise(c: &mut Criterion) {
    use vosbench::nn::linear::{Activation, Linear};
    use vosbench::nn::norm::LayerNorm2d;
    let mut g = group(c, "elementwise");
    for dev in devices() {
        let dt = if dev.is_cuda() {
            DType::BF16
        } else {
            DType::F32
        };
        let es = dt.size_in_bytes() as u64;
        let name = |case: &str| format!("{}/{case}", dev_name(&dev));
        let rnd = |shape: &[usize]| -> anyhow::Result<Tensor> {
            Ok(Tensor::randn(0f32, 1f32, shape, &dev)?.to_dtype(dt)?)
        };
        let mut case = |id: String, bytes: u64, f: Box<dyn Fn() -> CResult<Tensor>>| {
            g.throughput(Throughput::Bytes(bytes));
            g.bench_function(id, |b| {
                b.iter(|| {
                    let y = f().expect("forward");
                    sync(&dev);
                    y
                })
            });
        };
        // LayerNorm2d + GELU of the memory encoder's mask downsampler (last level)
        let (x, w, bias) = (
            rnd(&[1, 256, 64, 64]).unwrap(),
            rnd(&[256]).unwrap(),
            rnd(&[256]).unwrap(),
        );
        let ln = LayerNorm2d::from_parts(w, bias, 1e-6);
        let n = 256 * 64 * 64;
        case(
            name("layer_norm2d_gelu/1x256x64x64"),
            2 * n * es,
            Box::new(move || ln.forward_gelu(&x)),
        );
        // Hiera-T's first q-pool
        let x = rnd(&[1, 256, 256, 96]).unwrap();
        let n = 256 * 256 * 96;
        case(
            name("max_pool_nhwc/1x256x256x96"),
            n * es + n / 4 * es,
            Box::new(move || vosbench::nn::pool::max_pool_nhwc(&x, (2, 2))),
        );
        // RoPE of memory attention's keys: 7 frames of a 64x64 table, 64 object pointers
        let rope = vosbench::nn::rope::AxialRope::new(256, 10000.0).unwrap();
        let table = rope.table(64, 64, &dev).unwrap();
        let x = rnd(&[1, 1, 28736, 256]).unwrap();
        let n = 28736 * 256;
        case(
            name("rope_keys/1x1x28736x256"),
            2 * n * es,
            Box::new(move || vosbench::nn::rope::rotate_tokens(&x, &table, 64, true)),
        );
        // Hiera-T stage-1 MLP input layer with its GELU (bias and activation in one pass on CUDA)
        let lin = Linear::new(rnd(&[384, 96]).unwrap(), Some(rnd(&[384]).unwrap()));
        let x = rnd(&[65536, 96]).unwrap();
        case(
            name("linear_gelu/65536x96->384"),
            (65536 * 96 + 65536 * 384) as u64 * es,
            Box::new(move || lin.forward_act(&x, Activation::GeluErf)),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = hiera_blocks, fpn_neck, prompt_encoder, mask_decoder, memory_encoder,
        memory_attention, repvit_blocks, perceiver, conv_ops, depthwise, sdpa_kernel, elementwise
}
criterion_main!(benches);
