"""SAM 2.1 parity fixtures from the official PyTorch code (sam2 1.1.0), seeded random weights.

Subcommands
-----------
``stages`` (default)
    Build the official model from ``configs/sam2.1/sam2.1_hiera_t.yaml`` with hydra overrides
    derived from one of our variant JSON files (``tests/models/sam2.1_test.json`` by default,
    ``models/<variant>.json`` with ``--variant``), re-draw every parameter with seeded values,
    and write ``<out>/model.pt`` (``{"model": state_dict}``) and ``<out>/stages.safetensors``
    (the named tensors of ``tests/reference/FIXTURES.md``).
``check-config``
    For every SAM 2.1 JSON in ``models/``: instantiate the official model from its own yaml (no
    overrides), compare its hyperparameters with the JSON and its parameter count with
    ``checkpoint.expected_params``; also build it from the JSON-derived overrides and check that
    the state-dict keys and shapes are identical.

Weights (``--seed``, default 0; a ``torch.Generator`` seeded with it draws every tensor in
state-dict order):
    Linear/Conv weights   N(0, 1/fan_in)   (ConvTranspose2d: fan_in = in_channels, since k = s)
    Linear/Conv biases    0.1 N(0, 1)
    LayerNorm / LayerNorm2d weight 1 + 0.1 N, bias 0.1 N
    CXBlock gamma         0.3 + 0.1 N      (the default 1e-6 would hide the fuser)
    nn.Embedding tables, Hiera pos_embed / pos_embed_window, maskmem_tpos_enc, no_mem_embed,
    no_mem_pos_enc, no_obj_ptr, no_obj_embed_spatial: 0.5 N
    prompt-encoder random-Fourier matrix (a buffer): N(0, 1), as at init
    Residual branches of the Hiera blocks (attn.proj, mlp.layers.1) are scaled by 0.5 so that
    the trunk activations stay O(1) (the script prints the std of every block output).
    ``sam_mask_decoder.pred_obj_score_head.layers.2.bias`` is set to ``OBJ_SCORE_BIAS`` (+2.0)
    so that the object-score logit is positive on prompt frames and on most tracking frames;
    otherwise about half of the frames would be "no object" (masks = -1024 everywhere) and the
    mask paths would go untested. With seed 0 the score is about +1.7 here and +1.44..+1.76 on
    every video-fixture frame; the negative (no-object) case is covered only by
    ``encode_new_memory.neg.*``.

Numerics: pure fp32 on CPU, no autocast, TF32 off (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32`` set to False), 2 threads.

Input frame: a synthetic RGB frame (textured background, three textured shapes; see
``render_frame``) rendered at S x S, so no resize; normalized as the video loader does
(uint8 / 255 in float64, cast to float32, minus mean (0.485,0.456,0.406), over std
(0.229,0.224,0.225) in float32).

SAM2Base glue tensors (beyond the per-module ones of FIXTURES.md):
    heads.{points,box}.{low_res_multimasks, high_res_multimasks, ious, low_res_masks,
        high_res_masks, obj_ptr, object_score_logits}: the 7 outputs of
        ``_forward_sam_heads(backbone_features=decoder.image_embeddings, point_inputs=
        {prompt.<case>.coords, prompt.<case>.labels (int)}, mask_inputs=None,
        high_res_features=[decoder.high_res.0, decoder.high_res.1], multimask_output=
        True for points / False for box)``
    encode_new_memory.{pos,neg}.{pred_masks_high_res, object_score_logits, is_mask_from_pts,
        features, pos}: ``_encode_new_memory(current_vision_feats=[.., memenc.pix_feat as
        [e*e,1,C]], feat_sizes, pred_masks_high_res, object_score_logits, is_mask_from_pts)``;
        pos: heads.points.high_res_masks, logit +3, from points (binarized);
        neg: heads.box.high_res_masks, logit -3, not from points (sigmoid) -> no_obj_embed_spatial
    encode_new_memory.input_vision_feat = the [e*e,1,C] top-level feature used above
    obj_ptr_tpos.{input,output}: input = signed temporal offsets (float32 [P]),
        output = obj_ptr_tpos_proj(get_1d_sine_pe(input / (max_ptr - 1), dim=C)) [P, M],
        max_ptr = min(num_frames=24, max_obj_ptrs_in_encoder) (stored as obj_ptr_tpos.max_ptr)
    prepare_memory.*: ``_prepare_memory_conditioned_features`` for frame 3 of a 24-frame video
        with cond frame 0 and non-cond frames 1, 2 (see FIXTURES.md); its memory-attention
        inputs are the ``memattn.*`` tensors.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJ_SCORE_BIAS = 2.0
HIERA_RESIDUAL_SCALE = 0.5
NUM_FRAMES_FOR_PTRS = 24

VARIANT_YAML = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
BASE_YAML = "configs/sam2.1/sam2.1_hiera_t.yaml"
# Tracker flags of our JSON that are SAM2Base constructor arguments.
TRACKER_KWARGS = [
    "num_maskmem", "sigmoid_scale_for_mem_enc", "sigmoid_bias_for_mem_enc",
    "use_mask_input_as_output_without_sam", "directly_add_no_mem_embed", "no_obj_embed_spatial",
    "use_high_res_features_in_sam", "multimask_output_in_sam", "iou_prediction_use_sigmoid",
    "use_obj_ptrs_in_encoder", "max_obj_ptrs_in_encoder", "add_tpos_enc_to_obj_ptrs",
    "proj_tpos_enc_in_obj_ptrs", "use_signed_tpos_enc_to_obj_ptrs",
    "only_obj_ptrs_in_the_past_for_eval", "pred_obj_scores", "pred_obj_scores_mlp",
    "fixed_no_obj_ptr", "soft_no_obj_ptr", "multimask_output_for_tracking",
    "use_multimask_token_for_obj_ptr", "multimask_min_pt_num", "multimask_max_pt_num",
    "use_mlp_for_obj_ptr_proj", "memory_temporal_stride_for_eval", "max_cond_frames_in_attn",
    "non_overlap_masks_for_mem_enc",
]
# Set by build_sam2_video_predictor itself (checked after the build, not overridden).
BUILDER_SET = ["binarize_mask_from_pts_for_mem_enc", "fill_hole_area"]


def setup_torch():
    import torch

    # 2 threads keeps committed fixtures reproducible on small machines; full-size runs on a
    # bigger host set REF_THREADS (tests/gpu/parity_full.sh passes the core count).
    torch.set_num_threads(int(os.environ.get("REF_THREADS", "2")))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


# --------------------------------------------------------------------------------------------
# JSON -> hydra overrides, model build
# --------------------------------------------------------------------------------------------


def _v(x):
    """Hydra literal for a JSON value."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (list, tuple)):
        return "[" + ",".join(_v(e) for e in x) + "]"
    if isinstance(x, str):
        return x
    return repr(x)


def overrides_from_json(cfg):
    """Hydra overrides that turn the sam2.1_hiera_t yaml into the model described by `cfg`."""
    ie, tr, nk = cfg["image_encoder"], cfg["image_encoder"]["trunk"], cfg["image_encoder"]["neck"]
    ma, me = cfg["memory_attention"], cfg["memory_encoder"]
    if tr["type"] != "hiera":
        raise ValueError(f"{cfg['name']}: trunk type {tr['type']} is not a SAM 2.1 Hiera")
    if ma["self_attention"]["kind"] != "rope" or ma["cross_attention"]["kind"] != "rope":
        raise ValueError(f"{cfg['name']}: only RoPE memory attention is supported here")
    if cfg.get("spatial_perceiver") is not None:
        raise ValueError(f"{cfg['name']}: has a spatial perceiver (EdgeTAM), not SAM 2.1")
    if tr["window_pos_embed_size"] != [tr["window_spec"][0]] * 2:
        raise ValueError("window_pos_embed_size must be [window_spec[0]]*2 in the official Hiera")
    if tr["q_stride"] != [2, 2]:
        # hydra would hand Hiera a ListConfig, which max_pool2d rejects; (2, 2) is the default
        raise ValueError("q_stride must be the Hiera default [2, 2]")
    if tr["mlp_ratio"] != 4.0:
        raise ValueError("the official Hiera blocks use mlp_ratio 4.0 (not configurable)")
    m, t, n = "++model.", "++model.image_encoder.trunk.", "++model.image_encoder.neck."
    L = "++model.memory_attention.layer."
    o = [
        f"{m}image_size={cfg['image_size']}",
        f"{m}backbone_stride={cfg['backbone_stride']}",
        f"{m}image_encoder.scalp={ie['scalp']}",
        f"{t}embed_dim={tr['embed_dim']}",
        f"{t}num_heads={tr['num_heads']}",
        f"{t}stages={_v(tr['stages'])}",
        f"{t}global_att_blocks={_v(tr['global_att_blocks'])}",
        f"{t}window_spec={_v(tr['window_spec'])}",
        f"{t}window_pos_embed_bkg_spatial_size={_v(tr['window_pos_embed_bkg_spatial_size'])}",
        f"{t}q_pool={tr['q_pool']}",
        f"{t}dim_mul={_v(tr['dim_mul'])}",
        f"{t}head_mul={_v(tr['head_mul'])}",
        f"{n}d_model={nk['d_model']}",
        f"{n}backbone_channel_list={_v(nk['backbone_channel_list'])}",
        f"{n}fpn_top_down_levels={_v(nk['fpn_top_down_levels'])}",
        f"{n}fpn_interp_model={nk['fpn_interp_model']}",
        f"{n}fuse_type={nk['fuse_type']}",
        f"{n}kernel_size={nk['kernel_size']}",
        f"{n}position_encoding.num_pos_feats={nk['pos_num_feats']}",
        f"{n}position_encoding.temperature={_v(nk['pos_temperature'])}",
        f"++model.memory_attention.d_model={ma['d_model']}",
        f"++model.memory_attention.num_layers={ma['num_layers']}",
        f"++model.memory_attention.pos_enc_at_input={_v(ma['pos_enc_at_input'])}",
        f"{L}d_model={ma['d_model']}",
        f"{L}dim_feedforward={ma['dim_feedforward']}",
        f"{L}pos_enc_at_attn={_v(ma['pos_enc_at_attn'])}",
        f"{L}pos_enc_at_cross_attn_keys={_v(ma['pos_enc_at_cross_attn_keys'])}",
        f"{L}pos_enc_at_cross_attn_queries={_v(ma['pos_enc_at_cross_attn_queries'])}",
    ]
    for key, a in (("self_attention", ma["self_attention"]), ("cross_attention", ma["cross_attention"])):
        o += [
            f"{L}{key}.embedding_dim={ma['d_model']}",
            f"{L}{key}.rope_theta={_v(a['rope_theta'])}",
            f"{L}{key}.feat_sizes={_v(a['feat_sizes'])}",
            f"{L}{key}.num_heads={a['num_heads']}",
            f"{L}{key}.downsample_rate={a['downsample_rate']}",
        ]
    ca = ma["cross_attention"]
    o += [f"{L}cross_attention.rope_k_repeat={_v(ca['rope_k_repeat'])}",
          f"{L}cross_attention.kv_in_dim={ca['kv_in_dim']}"]
    md, fu = me["mask_downsampler"], me["fuser"]
    e = "++model.memory_encoder."
    o += [
        f"{e}in_dim={me['in_dim']}",
        f"{e}out_dim={me['out_dim']}",
        f"{e}position_encoding.num_pos_feats={me['pos_num_feats']}",
        f"{e}mask_downsampler.embed_dim={md['embed_dim']}",
        f"{e}mask_downsampler.kernel_size={md['kernel_size']}",
        f"{e}mask_downsampler.stride={md['stride']}",
        f"{e}mask_downsampler.padding={md['padding']}",
        f"{e}mask_downsampler.total_stride={md['total_stride']}",
        f"{e}fuser.num_layers={fu['num_layers']}",
        f"{e}fuser.layer.dim={fu['dim']}",
        f"{e}fuser.layer.kernel_size={fu['kernel_size']}",
        f"{e}fuser.layer.padding={fu['padding']}",
    ]
    for k in TRACKER_KWARGS:
        o.append(f"{m}{k}={_v(cfg['tracker'][k])}")
    return o


def build_official(yaml, overrides=(), ckpt_path=None):
    from sam2.build_sam import build_sam2_video_predictor

    return build_sam2_video_predictor(
        yaml, ckpt_path=ckpt_path, device="cpu", mode="eval", hydra_overrides_extra=list(overrides)
    )


def build_from_json(cfg, ckpt_path=None):
    """The official SAM2VideoPredictor for our JSON; `ckpt_path` is loaded strictly if given."""
    model = build_official(BASE_YAML, overrides_from_json(cfg), ckpt_path)
    problems = compare_hparams(model, cfg)
    if problems:
        raise SystemExit("built model does not match the JSON:\n  " + "\n  ".join(problems))
    return model


def load_json(variant):
    if variant is None:
        path = os.path.join(REPO, "tests/models/sam2.1_test.json")
    else:
        path = os.path.join(REPO, "models", f"{variant}.json")
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------------------------
# Introspection: hyperparameters of an instantiated official model, compared with a JSON
# --------------------------------------------------------------------------------------------


def compare_hparams(model, cfg):
    from sam2.modeling.sam.transformer import RoPEAttention

    got, want = {}, {}

    def chk(name, g, w):
        got[name], want[name] = g, w

    tr = model.image_encoder.trunk
    jt = cfg["image_encoder"]["trunk"]
    chk("image_size", model.image_size, cfg["image_size"])
    chk("backbone_stride", model.backbone_stride, cfg["backbone_stride"])
    chk("scalp", model.image_encoder.scalp, cfg["image_encoder"]["scalp"])
    chk("trunk.embed_dim", tr.patch_embed.proj.out_channels, jt["embed_dim"])
    chk("trunk.num_heads", tr.blocks[0].attn.num_heads, jt["num_heads"])
    ends = tr.stage_ends
    stages = [ends[0] + 1] + [ends[i] - ends[i - 1] for i in range(1, len(ends))]
    chk("trunk.stages", stages, jt["stages"])
    chk("trunk.global_att_blocks", [i for i, b in enumerate(tr.blocks) if b.window_size == 0],
        sorted(jt["global_att_blocks"]))
    chk("trunk.window_spec", list(tr.window_spec), jt["window_spec"])
    chk("trunk.window_pos_embed_size", list(tr.pos_embed_window.shape[2:]), jt["window_pos_embed_size"])
    chk("trunk.window_pos_embed_bkg_spatial_size", list(tr.pos_embed.shape[2:]),
        jt["window_pos_embed_bkg_spatial_size"])
    chk("trunk.q_pool", len(tr.q_pool_blocks), jt["q_pool"])
    chk("trunk.q_stride", list(tr.q_stride), jt["q_stride"])
    b0 = tr.blocks[0]
    chk("trunk.mlp_ratio", b0.mlp.layers[0].out_features / b0.dim_out, jt["mlp_ratio"])
    qb = tr.blocks[tr.q_pool_blocks[0]] if tr.q_pool_blocks else None
    if qb is not None:
        chk("trunk.dim_mul", qb.dim_out / qb.dim, jt["dim_mul"])
        chk("trunk.head_mul", qb.attn.num_heads / tr.blocks[tr.q_pool_blocks[0] - 1].attn.num_heads,
            jt["head_mul"])
    nk, jn = model.image_encoder.neck, cfg["image_encoder"]["neck"]
    chk("neck.d_model", nk.d_model, jn["d_model"])
    chk("neck.backbone_channel_list", list(nk.backbone_channel_list), jn["backbone_channel_list"])
    chk("neck.fpn_top_down_levels", list(nk.fpn_top_down_levels), jn["fpn_top_down_levels"])
    chk("neck.fpn_interp_model", nk.fpn_interp_model, jn["fpn_interp_model"])
    chk("neck.fuse_type", nk.fuse_type, jn["fuse_type"])
    chk("neck.kernel_size", nk.convs[0].conv.kernel_size[0], jn["kernel_size"])
    chk("neck.pos_num_feats", nk.position_encoding.num_pos_feats * 2, jn["pos_num_feats"])
    chk("neck.pos_temperature", float(nk.position_encoding.temperature), jn["pos_temperature"])

    ma, jm = model.memory_attention, cfg["memory_attention"]
    l0 = ma.layers[0]
    chk("memattn.d_model", ma.d_model, jm["d_model"])
    chk("memattn.num_layers", ma.num_layers, jm["num_layers"])
    chk("memattn.pos_enc_at_input", ma.pos_enc_at_input, jm["pos_enc_at_input"])
    chk("memattn.dim_feedforward", l0.linear1.out_features, jm["dim_feedforward"])
    chk("memattn.pos_enc_at_attn", l0.pos_enc_at_attn, jm["pos_enc_at_attn"])
    chk("memattn.pos_enc_at_cross_attn_keys", l0.pos_enc_at_cross_attn_keys, jm["pos_enc_at_cross_attn_keys"])
    chk("memattn.pos_enc_at_cross_attn_queries", l0.pos_enc_at_cross_attn_queries,
        jm["pos_enc_at_cross_attn_queries"])
    for key, att in (("self_attention", l0.self_attn), ("cross_attention", l0.cross_attn_image)):
        ja = jm[key]
        chk(f"memattn.{key}.kind", "rope" if isinstance(att, RoPEAttention) else type(att).__name__,
            ja["kind"])
        chk(f"memattn.{key}.num_heads", att.num_heads, ja["num_heads"])
        chk(f"memattn.{key}.downsample_rate", att.embedding_dim // att.internal_dim, ja["downsample_rate"])
        # freqs_cis is built at init for feat_sizes: end_x*end_y rows, dim/4 ... per axis
        chk(f"memattn.{key}.feat_sizes(tokens)", att.freqs_cis.shape[0],
            ja["feat_sizes"][0] * ja["feat_sizes"][1])
        # rope_theta: the first non-trivial frequency is theta^(-4/dim)
        hd = att.internal_dim // att.num_heads
        f1 = float(att.freqs_cis[1, 1].angle())
        chk(f"memattn.{key}.rope_theta", float(round(math.exp(-math.log(f1) * hd / 4))), ja["rope_theta"])
    chk("memattn.cross_attention.rope_k_repeat", l0.cross_attn_image.rope_k_repeat,
        jm["cross_attention"]["rope_k_repeat"])
    chk("memattn.cross_attention.kv_in_dim", l0.cross_attn_image.kv_in_dim, jm["cross_attention"]["kv_in_dim"])

    me, je = model.memory_encoder, cfg["memory_encoder"]
    chk("memenc.in_dim", me.pix_feat_proj.in_channels, je["in_dim"])
    chk("memenc.out_dim", me.out_proj.out_channels, je["out_dim"])
    chk("memenc.pos_num_feats", me.position_encoding.num_pos_feats * 2, je["pos_num_feats"])
    enc = me.mask_downsampler.encoder
    convs = [c for c in enc if isinstance(c, __import__("torch").nn.Conv2d)]
    jd = je["mask_downsampler"]
    chk("memenc.mask_downsampler.embed_dim", convs[-1].out_channels, jd["embed_dim"])
    chk("memenc.mask_downsampler.kernel_size", convs[0].kernel_size[0], jd["kernel_size"])
    chk("memenc.mask_downsampler.stride", convs[0].stride[0], jd["stride"])
    chk("memenc.mask_downsampler.padding", convs[0].padding[0], jd["padding"])
    chk("memenc.mask_downsampler.total_stride", convs[0].stride[0] ** (len(convs) - 1), jd["total_stride"])
    jf = je["fuser"]
    fl = me.fuser.layers[0]
    chk("memenc.fuser.num_layers", len(me.fuser.layers), jf["num_layers"])
    chk("memenc.fuser.dim", fl.dwconv.in_channels, jf["dim"])
    chk("memenc.fuser.kernel_size", fl.dwconv.kernel_size[0], jf["kernel_size"])
    chk("memenc.fuser.padding", fl.dwconv.padding[0], jf["padding"])

    pe = model.sam_prompt_encoder
    chk("prompt_encoder.mask_in_chans", pe.mask_downscaling[3].out_channels, cfg["prompt_encoder"]["mask_in_chans"])
    md, jd = model.sam_mask_decoder, cfg["mask_decoder"]
    chk("mask_decoder.num_multimask_outputs", md.num_multimask_outputs, jd["num_multimask_outputs"])
    chk("mask_decoder.transformer_depth", md.transformer.depth, jd["transformer_depth"])
    chk("mask_decoder.transformer_mlp_dim", md.transformer.layers[0].mlp.layers[0].out_features,
        jd["transformer_mlp_dim"])
    chk("mask_decoder.transformer_num_heads", md.transformer.num_heads, jd["transformer_num_heads"])
    ct = md.transformer.layers[0].cross_attn_token_to_image
    chk("mask_decoder.attention_downsample_rate", ct.embedding_dim // ct.internal_dim,
        jd["attention_downsample_rate"])
    chk("mask_decoder.iou_head_depth", md.iou_prediction_head.num_layers, jd["iou_head_depth"])
    chk("mask_decoder.iou_head_hidden_dim", md.iou_prediction_head.layers[0].out_features,
        jd["iou_head_hidden_dim"])
    chk("mask_decoder.dynamic_multimask_via_stability", md.dynamic_multimask_via_stability, True)
    chk("mask_decoder.dynamic_multimask_stability_delta", md.dynamic_multimask_stability_delta,
        jd["dynamic_multimask_stability_delta"])
    chk("mask_decoder.dynamic_multimask_stability_thresh", md.dynamic_multimask_stability_thresh,
        jd["dynamic_multimask_stability_thresh"])

    jt = cfg["tracker"]
    for k in TRACKER_KWARGS + BUILDER_SET:
        g = getattr(model, k)
        if k == "no_obj_embed_spatial":
            g = g is not None
        chk(f"tracker.{k}", g, jt[k])

    problems = []
    for k in want:
        g, w = got[k], want[k]
        same = (abs(float(g) - float(w)) < 1e-9) if isinstance(w, float) and not isinstance(w, bool) else g == w
        if not same:
            problems.append(f"{k}: official {g!r} vs JSON {w!r}")
    return problems


def check_config():
    torch = setup_torch()
    ok = True
    for fn in sorted(os.listdir(os.path.join(REPO, "models"))):
        if not fn.endswith(".json"):
            continue
        with open(os.path.join(REPO, "models", fn)) as f:
            cfg = json.load(f)
        name = cfg["name"]
        if name not in VARIANT_YAML:
            print(f"{name}: skipped (not a SAM 2.1 Hiera variant; EdgeTAM has its own script)")
            continue
        official = build_official(VARIANT_YAML[name])
        problems = compare_hparams(official, cfg)
        n = sum(p.numel() for p in official.parameters())
        exp = cfg["checkpoint"]["expected_params"]
        if n != exp:
            problems.append(f"parameter count: official {n} vs JSON expected_params {exp}")
        ours = build_from_json(cfg)
        sd_o = {k: tuple(v.shape) for k, v in official.state_dict().items()}
        sd_j = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        if sd_o != sd_j:
            diff = sorted(set(sd_o.items()) ^ set(sd_j.items()))[:10]
            problems.append(f"state dict of the JSON-derived build differs: {diff}")
        status = "OK" if not problems else "MISMATCH"
        print(f"{name}: {status}: {n} params (expected {exp}), {len(sd_o)} state-dict keys, "
              f"yaml {VARIANT_YAML[name]}")
        for p in problems:
            print("   ", p)
        ok &= not problems
        del official, ours
    if not ok:
        raise SystemExit(1)


# --------------------------------------------------------------------------------------------
# Seeded weights
# --------------------------------------------------------------------------------------------


def reinit_weights(model, seed):
    torch = setup_torch()
    import torch.nn as nn
    from sam2.modeling.sam2_utils import LayerNorm2d

    g = torch.Generator().manual_seed(seed)
    owner = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = (mod, pname)
        for bname, _ in mod.named_buffers(recurse=False):
            owner[f"{mname}.{bname}" if mname else bname] = (mod, bname)
    sd = model.state_dict()
    with torch.no_grad():
        for key in sd:
            mod, leaf = owner[key]
            t = getattr(mod, leaf)
            z = torch.randn(t.shape, generator=g, dtype=torch.float32)
            if isinstance(mod, (nn.LayerNorm, LayerNorm2d)):
                v = 1.0 + 0.1 * z if leaf == "weight" else 0.1 * z
            elif isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                if leaf == "bias":
                    v = 0.1 * z
                else:
                    if isinstance(mod, nn.ConvTranspose2d):
                        fan_in = t.shape[0]
                    else:
                        fan_in = int(np.prod(t.shape[1:]))
                    v = z / math.sqrt(fan_in)
            elif isinstance(mod, nn.Embedding):
                v = 0.5 * z
            elif leaf == "gamma":
                v = 0.3 + 0.1 * z
            elif leaf == "positional_encoding_gaussian_matrix":
                v = z
            elif leaf in ("pos_embed", "pos_embed_window", "maskmem_tpos_enc", "no_mem_embed",
                          "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial"):
                v = 0.5 * z
            else:
                raise SystemExit(f"reinit_weights: no rule for {key} ({type(mod).__name__})")
            t.copy_(v)
        for blk in model.image_encoder.trunk.blocks:
            blk.attn.proj.weight.mul_(HIERA_RESIDUAL_SCALE)
            blk.attn.proj.bias.mul_(HIERA_RESIDUAL_SCALE)
            blk.mlp.layers[-1].weight.mul_(HIERA_RESIDUAL_SCALE)
            blk.mlp.layers[-1].bias.mul_(HIERA_RESIDUAL_SCALE)
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(OBJ_SCORE_BIAS)


# --------------------------------------------------------------------------------------------
# Synthetic frames (shared with make_sam2_video_fixture.py)
# --------------------------------------------------------------------------------------------


def _scene(seed):
    rng = np.random.RandomState(seed)
    bg = {
        "waves": [(rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi), rng.uniform(10, 30))
                  for _ in range(5)],
        "base": rng.uniform(60, 160, size=3),
        "grad": rng.uniform(-50, 50, size=(2, 3)),
        "blobs": [(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2), rng.uniform(-60, 60, 3))
                  for _ in range(6)],
    }
    objs = [
        dict(kind="ellipse", c0=(0.28, 0.35), vel=(0.012, 0.006), amp=(0.03, 0.05), size=(0.16, 0.10),
             rot0=0.3, omega=0.08, col1=(220, 60, 50), col2=(250, 200, 60), tex="stripes", freq=9.0),
        dict(kind="rect", c0=(0.70, 0.62), vel=(-0.010, -0.004), amp=(0.04, 0.02), size=(0.11, 0.08),
             rot0=-0.2, omega=-0.12, col1=(40, 90, 210), col2=(200, 230, 255), tex="checker", freq=5.0),
        dict(kind="star", c0=(0.55, 0.22), vel=(0.002, 0.011), amp=(0.05, 0.02), size=(0.10, 0.10),
             rot0=0.0, omega=0.15, col1=(40, 170, 70), col2=(230, 250, 120), tex="radial", freq=7.0),
    ]
    return bg, objs


def object_state(obj, t):
    cx = obj["c0"][0] + obj["vel"][0] * t + obj["amp"][0] * np.sin(0.35 * t)
    cy = obj["c0"][1] + obj["vel"][1] * t + obj["amp"][1] * np.cos(0.27 * t)
    return cx, cy, obj["rot0"] + obj["omega"] * t


def _obj_coverage(obj, t, u, v, aspect, px):
    """Soft coverage in [0,1] and object-local coords; u, v in [0,1], aspect = W/H."""
    cx, cy, th = object_state(obj, t)
    dx, dy = (u - cx) * aspect, v - cy
    c, s = np.cos(th), np.sin(th)
    lx, ly = c * dx + s * dy, -s * dx + c * dy
    a, b = obj["size"]
    if obj["kind"] == "ellipse":
        r = np.sqrt((lx / a) ** 2 + (ly / b) ** 2)
        d = (r - 1.0) * min(a, b)
    elif obj["kind"] == "rect":
        d = np.maximum(np.abs(lx) - a, np.abs(ly) - b)
    else:
        ang = np.arctan2(ly, lx)
        rad = a * (0.65 + 0.35 * np.cos(5 * ang))
        d = np.sqrt(lx ** 2 + ly ** 2) - rad
    cov = np.clip(0.5 - d / px, 0.0, 1.0)
    return cov, lx / a, ly / b


def render_frame(t, width, height, seed=0):
    """uint8 [H, W, 3] frame t of a seeded synthetic scene (resolution independent)."""
    bg, objs = _scene(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (xx + 0.5) / width, (yy + 0.5) / height
    img = np.zeros((height, width, 3)) + bg["base"]
    img += u[..., None] * bg["grad"][0] + v[..., None] * bg["grad"][1]
    for fx, fy, ph, amp in bg["waves"]:
        w = amp * np.sin(2 * np.pi * (fx * u + fy * v) + ph + 0.05 * t)
        img += w[..., None] * np.array([1.0, 0.8, 0.6])
    for bx, by, br, col in bg["blobs"]:
        img += np.exp(-((u - bx) ** 2 + (v - by) ** 2) / (2 * br ** 2))[..., None] * col
    px = 1.5 / height
    aspect = width / height
    for obj in objs:
        cov, lx, ly = _obj_coverage(obj, t, u, v, aspect, px)
        if obj["tex"] == "stripes":
            m = 0.5 + 0.5 * np.sin(obj["freq"] * lx + 2 * ly)
        elif obj["tex"] == "checker":
            m = ((np.floor(obj["freq"] * (lx + 1)) + np.floor(obj["freq"] * (ly + 1))) % 2) * 0.8 + 0.1
        else:
            m = 0.5 + 0.5 * np.cos(obj["freq"] * np.sqrt(lx ** 2 + ly ** 2))
        shade = 0.75 + 0.25 * np.clip(1 - 0.5 * (lx ** 2 + ly ** 2), 0, 1)
        col = (np.array(obj["col1"]) * (1 - m[..., None]) + np.array(obj["col2"]) * m[..., None]) * shade[..., None]
        img = img * (1 - cov[..., None]) + col * cov[..., None]
    noise = np.random.RandomState(seed * 1000 + 17 + t).normal(0, 2.0, img.shape)
    return np.clip(np.round(img + noise), 0, 255).astype(np.uint8)


def object_center_px(t, obj_index, width, height, seed=0):
    _, objs = _scene(seed)
    cx, cy, _ = object_state(objs[obj_index], t)
    return cx * width, cy * height


def object_box_px(t, obj_index, width, height, seed=0):
    """Tight [x0, y0, x1, y1] box (pixels) of the rendered object's coverage > 0.5."""
    _, objs = _scene(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = (xx + 0.5) / width, (yy + 0.5) / height
    cov, _, _ = _obj_coverage(objs[obj_index], t, u, v, width / height, 1.5 / height)
    ys, xs = np.nonzero(cov > 0.5)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def normalize_like_video_loader(torch, img_u8):
    x = torch.from_numpy(img_u8 / 255.0).permute(2, 0, 1).float()
    mean = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32)[:, None, None]
    std = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32)[:, None, None]
    return ((x - mean) / std)[None]


# --------------------------------------------------------------------------------------------
# Stage fixture
# --------------------------------------------------------------------------------------------


def make_model(variant, seed):
    setup_torch()
    cfg = load_json(variant)
    model = build_from_json(cfg)
    reinit_weights(model, seed)
    return cfg, model


def save_model_pt(torch, model, out):
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"model": sd}, os.path.join(out, "model.pt"))


def stages(variant, out, seed):
    torch = setup_torch()
    from safetensors.torch import save_file
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    cfg, model = make_model(variant, seed)
    os.makedirs(out, exist_ok=True)
    save_model_pt(torch, model, out)
    S = cfg["image_size"]
    e = S // cfg["backbone_stride"]
    C = model.hidden_dim
    M = model.mem_dim
    T = {}

    def put(name, t):
        if name in T:
            raise SystemExit(f"duplicate fixture name {name}")
        T[name] = t.detach().to(torch.float32).contiguous().clone()

    stats = []
    with torch.inference_mode():
        image = normalize_like_video_loader(torch, render_frame(0, S, S, seed=seed))
        put("image", image)

        # ---- Hiera trunk, block by block
        trunk = model.image_encoder.trunk
        x = trunk.patch_embed(image)
        put("trunk.patch_embed", x)
        pos = trunk._get_pos_embed(x.shape[1:3])
        put("trunk.pos_embed", pos)
        x = x + pos
        outs = []
        for i, blk in enumerate(trunk.blocks):
            x = blk(x)
            put(f"trunk.blocks.{i}", x)
            stats.append((f"trunk.blocks.{i}", float(x.std()), tuple(x.shape)))
            if i in trunk.stage_ends:
                outs.append(x.permute(0, 3, 1, 2))
        ref = trunk(image)
        for k, (a, b) in enumerate(zip(outs, ref)):
            assert torch.equal(a, b), f"manual trunk loop differs at stage {k}"
            put(f"trunk.out.{k}", b)

        # ---- Neck and image encoder
        fpn, fpos = model.image_encoder.neck(ref)
        for k in range(len(fpn)):
            put(f"neck.fpn.{k}", fpn[k])
            put(f"neck.pos.{k}", fpos[k])
            stats.append((f"neck.fpn.{k}", float(fpn[k].std()), tuple(fpn[k].shape)))
        enc = model.image_encoder(image)
        for k in range(len(enc["backbone_fpn"])):
            put(f"encoder.backbone_fpn.{k}", enc["backbone_fpn"][k])
            put(f"encoder.vision_pos_enc.{k}", enc["vision_pos_enc"][k])
        backbone_out = model.forward_image(image)
        for k in range(len(backbone_out["backbone_fpn"])):
            put(f"forward_image.backbone_fpn.{k}", backbone_out["backbone_fpn"][k])
        _, vision_feats, vision_pos, feat_sizes = model._prepare_backbone_features(backbone_out)

        # ---- Prompt encoder (coordinates in model-input pixels)
        pe = model.sam_prompt_encoder
        cx, cy = object_center_px(0, 0, S, S, seed=seed)
        bx = object_box_px(0, 0, S, S, seed=seed)
        ox, oy = object_center_px(0, 1, S, S, seed=seed)
        cases = {
            "points": ([[cx, cy]], [1]),
            "clicks": ([[cx, cy], [ox, oy], [cx + 0.05 * S, cy - 0.03 * S]], [1, 0, 1]),
            "box": ([[bx[0], bx[1]], [bx[2], bx[3]]], [2, 3]),
            "none": ([[0.0, 0.0]], [-1]),
        }
        prompts = {}
        for case, (pts, lab) in cases.items():
            coords = torch.tensor([pts], dtype=torch.float32)
            labels = torch.tensor([lab], dtype=torch.int32)
            sparse, dense = pe(points=(coords, labels), boxes=None, masks=None)
            put(f"prompt.{case}.coords", coords)
            put(f"prompt.{case}.labels", labels.float())
            put(f"prompt.{case}.sparse", sparse)
            put(f"prompt.{case}.dense", dense)
            prompts[case] = (coords, labels, sparse, dense)
        yy, xx = torch.meshgrid(torch.arange(4 * e, dtype=torch.float32),
                                torch.arange(4 * e, dtype=torch.float32), indexing="ij")
        mask_in = 12.0 * torch.tanh(2.5 - torch.sqrt((xx - 1.5 * e) ** 2 + (yy - 2.2 * e) ** 2) / (0.3 * e))
        mask_in = mask_in + 2.0 * torch.sin(xx / 3.0) * torch.cos(yy / 5.0)
        mask_in = mask_in[None, None]
        put("prompt.mask.input", mask_in)
        put("prompt.mask.dense", pe._embed_masks(mask_in))
        dense_pe = pe.get_dense_pe()
        put("prompt.dense_pe", dense_pe)

        # ---- Mask decoder (on the initial-conditioning-frame feature: vision + no_mem_embed)
        image_emb = (vision_feats[-1] + model.no_mem_embed).permute(1, 2, 0).reshape(1, C, e, e)
        hr = [x.permute(1, 2, 0).reshape(1, x.shape[2], *s) for x, s in zip(vision_feats[:-1], feat_sizes[:-1])]
        put("decoder.image_embeddings", image_emb)
        put("decoder.high_res.0", hr[0])
        put("decoder.high_res.1", hr[1])
        md = model.sam_mask_decoder
        _, _, sp, de = prompts["points"]
        m_, iou, tok, obj = md.predict_masks(image_emb, dense_pe, sp, de, repeat_image=False,
                                             high_res_features=hr)
        for n_, t_ in zip(("masks", "iou", "mask_tokens_out", "object_score"), (m_, iou, tok, obj)):
            put(f"decoder.predict.{n_}", t_)
        m_, iou, tok, obj = md(image_emb, dense_pe, sp, de, multimask_output=True, repeat_image=False,
                               high_res_features=hr)
        for n_, t_ in zip(("masks", "iou", "sam_tokens_out", "object_score"), (m_, iou, tok, obj)):
            put(f"decoder.multi.{n_}", t_)
        _, _, sp, de = prompts["box"]
        all_m, all_iou, _, _ = md.predict_masks(image_emb, dense_pe, sp, de, repeat_image=False,
                                                high_res_features=hr)
        stab = float(md._get_stability_scores(all_m[:, 0:1])[0, 0])
        m_, iou, tok, obj = md(image_emb, dense_pe, sp, de, multimask_output=False, repeat_image=False,
                               high_res_features=hr)
        for n_, t_ in zip(("masks", "iou", "sam_tokens_out", "object_score"), (m_, iou, tok, obj)):
            put(f"decoder.single.{n_}", t_)
        put("decoder.single.stability", torch.tensor([stab]))

        # ---- SAM2Base._forward_sam_heads
        head_names = ("low_res_multimasks", "high_res_multimasks", "ious", "low_res_masks",
                      "high_res_masks", "obj_ptr", "object_score_logits")
        heads = {}
        for case, multi in (("points", True), ("box", False)):
            coords, labels, _, _ = prompts[case]
            res = model._forward_sam_heads(
                backbone_features=image_emb,
                point_inputs={"point_coords": coords, "point_labels": labels},
                mask_inputs=None, high_res_features=hr, multimask_output=multi)
            heads[case] = dict(zip(head_names, res))
            for n_, t_ in heads[case].items():
                put(f"heads.{case}.{n_}", t_)

        # ---- Memory encoder (module level)
        me = model.memory_encoder
        pix = vision_feats[-1].permute(1, 2, 0).reshape(1, C, e, e)
        mem_mask = torch.sigmoid(heads["points"]["high_res_masks"]) * 20.0 - 10.0
        put("memenc.pix_feat", pix)
        put("memenc.mask", mem_mask)
        ds = me.mask_downsampler(mem_mask)
        put("memenc.mask_downsampler", ds)
        put("memenc.fuser", me.fuser(me.pix_feat_proj(pix) + ds))
        mo = me(pix, mem_mask, skip_mask_sigmoid=True)
        put("memenc.features", mo["vision_features"])
        put("memenc.pos", mo["vision_pos_enc"][0])

        # ---- SAM2Base._encode_new_memory
        put("encode_new_memory.input_vision_feat", vision_feats[-1])
        enc_cases = {
            "pos": (heads["points"]["high_res_masks"], 3.0, True),
            "neg": (heads["box"]["high_res_masks"], -3.0, False),
        }
        mems = {}
        for case, (hm, score, from_pts) in enc_cases.items():
            score_t = torch.tensor([[score]], dtype=torch.float32)
            f_, p_ = model._encode_new_memory(current_vision_feats=vision_feats, feat_sizes=feat_sizes,
                                              pred_masks_high_res=hm, object_score_logits=score_t,
                                              is_mask_from_pts=from_pts)
            put(f"encode_new_memory.{case}.pred_masks_high_res", hm)
            put(f"encode_new_memory.{case}.object_score_logits", score_t)
            put(f"encode_new_memory.{case}.is_mask_from_pts", torch.tensor([1.0 if from_pts else 0.0]))
            put(f"encode_new_memory.{case}.features", f_)
            put(f"encode_new_memory.{case}.pos", p_[0])
            mems[case] = (f_, p_)

        # ---- Object-pointer temporal encoding
        max_ptr = min(NUM_FRAMES_FOR_PTRS, model.max_obj_ptrs_in_encoder)
        tpos = torch.tensor([0.0, 1.0, 2.0, 5.0, 15.0, -1.0, -3.0, -15.0])
        put("obj_ptr_tpos.input", tpos)
        put("obj_ptr_tpos.max_ptr", torch.tensor([float(max_ptr)]))
        put("obj_ptr_tpos.output", model.obj_ptr_tpos_proj(get_1d_sine_pe(tpos / (max_ptr - 1), dim=C)))

        # ---- Memory conditioning for frame 3: cond frame 0, non-cond frames 1 and 2
        third_mask = torch.nn.functional.interpolate(mask_in, size=(S, S), mode="bilinear", align_corners=False)
        f3, p3 = model._encode_new_memory(current_vision_feats=vision_feats, feat_sizes=feat_sizes,
                                          pred_masks_high_res=third_mask,
                                          object_score_logits=torch.tensor([[1.5]]), is_mask_from_pts=False)
        frame_mem = {0: mems["pos"][0], 1: mems["neg"][0], 2: f3}
        frame_ptr = {0: heads["points"]["obj_ptr"], 1: heads["box"]["obj_ptr"], 2: model.no_obj_ptr.detach().clone()}
        output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        for fidx in (0, 1, 2):
            stored = frame_mem[fidx].to(torch.bfloat16)  # as the video predictor stores it
            put(f"prepare_memory.maskmem_features.{fidx}", stored.float())
            put(f"prepare_memory.obj_ptr.{fidx}", frame_ptr[fidx])
            key = "cond_frame_outputs" if fidx == 0 else "non_cond_frame_outputs"
            output_dict[key][fidx] = {"maskmem_features": stored, "maskmem_pos_enc": mems["pos"][1],
                                      "obj_ptr": frame_ptr[fidx]}
        put("prepare_memory.maskmem_pos_enc", mems["pos"][1][0])
        put("prepare_memory.frame_idx", torch.tensor([3.0]))
        put("prepare_memory.num_frames", torch.tensor([float(NUM_FRAMES_FOR_PTRS)]))

        captured = {}

        def pre_hook(mod, args, kwargs):
            captured.update(kwargs)

        layer_out = {}
        hooks = [model.memory_attention.register_forward_pre_hook(pre_hook, with_kwargs=True)]
        for i, layer in enumerate(model.memory_attention.layers):
            hooks.append(layer.register_forward_hook(
                lambda mod, a, o, i=i: layer_out.__setitem__(i, o)))
        pix_mem = model._prepare_memory_conditioned_features(
            frame_idx=3, is_init_cond_frame=False, current_vision_feats=vision_feats[-1:],
            current_vision_pos_embeds=vision_pos[-1:], feat_sizes=feat_sizes[-1:], output_dict=output_dict,
            num_frames=NUM_FRAMES_FOR_PTRS, track_in_reverse=False)
        for h in hooks:
            h.remove()
        put("prepare_memory.out", pix_mem)
        n_ptr = int(captured["num_obj_ptr_tokens"])
        assert n_ptr == 3 * C // M, (n_ptr, C, M)
        assert captured["memory"].shape[0] == 3 * e * e + n_ptr
        put("memattn.curr", captured["curr"][0])
        put("memattn.curr_pos", captured["curr_pos"][0])
        put("memattn.memory", captured["memory"])
        put("memattn.memory_pos", captured["memory_pos"])
        put("memattn.num_obj_ptr_tokens", torch.tensor([float(n_ptr)]))
        for i in sorted(layer_out):
            put(f"memattn.layers.{i}", layer_out[i])
        mout = model.memory_attention(curr=captured["curr"], curr_pos=captured["curr_pos"],
                                      memory=captured["memory"], memory_pos=captured["memory_pos"],
                                      num_obj_ptr_tokens=n_ptr)
        put("memattn.out", mout)
        assert torch.equal(mout.permute(1, 2, 0).reshape(1, C, e, e), pix_mem)

    save_file(T, os.path.join(out, "stages.safetensors"))
    print(f"wrote {len(T)} tensors to {out}/stages.safetensors (seed {seed}, image_size {S})")
    print("activation std per stage:")
    for n_, s_, sh in stats:
        print(f"  {n_:24s} {str(sh):22s} std {s_:.3f}")
    print("decoder.predict.iou", T["decoder.predict.iou"].flatten().tolist())
    print("decoder.predict.object_score", float(T["decoder.predict.object_score"]))
    print("decoder.single stability", stab, "(single-mask token kept)" if stab >= md.dynamic_multimask_stability_thresh else "(fell back to best multimask)")
    for case in ("points", "box"):
        h = heads[case]
        print(f"heads.{case}: object score {float(h['object_score_logits']):.3f}, ious "
              f"{h['ious'].flatten().tolist()}, positive fraction of low_res_masks "
              f"{float((h['low_res_masks'] > 0).float().mean()):.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="stages", choices=["stages", "check-config"])
    ap.add_argument("--variant", default=None,
                    help="models/<variant>.json (default: tests/models/sam2.1_test.json)")
    ap.add_argument("--out", default=None, help="output folder (default tests/fixtures/sam2_test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-config", action="store_true", help="same as the check-config command")
    a = ap.parse_args()
    if a.check_config or a.command == "check-config":
        check_config()
        return
    out = a.out or os.path.join(REPO, "tests/fixtures/sam2_test")
    if a.variant is not None and a.out is None:
        raise SystemExit("--variant needs --out (full-size fixtures are not committed)")
    stages(a.variant, out, a.seed)


if __name__ == "__main__":
    main()
