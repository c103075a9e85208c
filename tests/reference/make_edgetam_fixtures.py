#!/usr/bin/env python3
"""Build the EdgeTAM parity fixture from the official EdgeTAM code (edgetam-dimos 1.0.1).

Run (CPU, a couple of seconds):

    PYTHONPATH=/root/venvs/edgetampkg /root/venvs/ref/bin/python \
        tests/reference/make_edgetam_fixtures.py [--variant tests/models/edgetam_test.json] \
        [--out tests/fixtures/edgetam_test] [--seed 0]

What it does:

* Instantiates the official `SAM2Base` from EdgeTAM's `configs/edgetam.yaml`, with the sizes of the
  chosen variant JSON written over the yaml (trunk widths and depths, neck, memory attention,
  memory encoder, perceiver, image size). The trunk is timm's RepViT, built by EdgeTAM's own
  `TimmBackbone`; that class asks timm for pretrained weights, which cannot be downloaded here, so
  `create_model` is wrapped to pass `pretrained=False` plus the variant's `embed_dim` and `depth`.
  Everything else is the unmodified official code.
* Re-draws every tensor of the state dict from a seeded generator with non-trivial scales (PyTorch's
  initial values leave BatchNorm at identity, layer scales at 1e-6 and `ConvNorm.bn` of the MLP
  output at zero, which would hide bugs). BatchNorm running variances are random and positive.
  The object-score head's last bias is shifted positive, as in the SAM 2.1 fixture.
* Runs the stages in pure fp32 on CPU (no autocast, TF32 off) and writes
  `model.pt` (`{"model": state_dict}`, the layout of the released checkpoint) and
  `stages.safetensors` (the tensors listed in tests/reference/FIXTURES.md, EdgeTAM part).

Besides the module stages it records the SAM2Base glue EdgeTAM changes: `_encode_new_memory`
(memory encoder, then the perceiver) for a binarized and a sigmoid mask, and
`_prepare_memory_conditioned_features` for frame 3 of a 24-frame video with memories of frames
0 (cond), 1 and 2 stored in bf16; the memory-attention tensors are the inputs that call hands to
memory attention (RoPEAttentionv2, `num_spatial_mem` = 3, zero object-pointer PE).

Single object only: the official perceiver's 2D path breaks for batch > 1 (EdgeTAM issue #15).
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import save_file

torch.set_num_threads(int(os.environ.get("REF_THREADS", "2")))  # full-size runs: tests/gpu/parity_full.sh
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

import sam2  # noqa: E402  (EdgeTAM's package, from PYTHONPATH)
import sam2.modeling.backbones.timm as timm_backbone  # noqa: E402

NUM_FRAMES_FOR_PTRS = 24
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_model(variant: dict):
    trunk = variant["image_encoder"]["trunk"]
    assert trunk["type"] == "repvit", "this script builds EdgeTAM variants only"
    orig_create_model = timm_backbone.create_model

    def create_model_offline(name, **kwargs):
        kwargs["pretrained"] = False
        kwargs["embed_dim"] = tuple(trunk["embed_dims"])
        kwargs["depth"] = tuple(trunk["depths"])
        # timm multiplies channel counts by it, so it must stay an int
        assert float(trunk["mlp_ratio"]).is_integer()
        kwargs["mlp_ratio"] = int(trunk["mlp_ratio"])
        kwargs["kernel_size"] = trunk["kernel_size"]
        kwargs["legacy"] = trunk["legacy"]
        return orig_create_model(name, **kwargs)

    timm_backbone.create_model = create_model_offline

    cfg_path = os.path.join(os.path.dirname(sam2.__file__), "configs", "edgetam.yaml")
    cfg = OmegaConf.load(cfg_path)
    m = cfg.model
    ie = variant["image_encoder"]
    m.image_size = variant["image_size"]
    m.backbone_stride = variant["backbone_stride"]
    m.image_encoder.scalp = ie["scalp"]
    m.image_encoder.trunk.name = trunk["timm_name"]
    neck = ie["neck"]
    m.image_encoder.neck.d_model = neck["d_model"]
    m.image_encoder.neck.backbone_channel_list = neck["backbone_channel_list"]
    m.image_encoder.neck.fpn_top_down_levels = neck["fpn_top_down_levels"]
    m.image_encoder.neck.fpn_interp_model = neck["fpn_interp_model"]
    m.image_encoder.neck.position_encoding.num_pos_feats = neck["pos_num_feats"]

    ma = variant["memory_attention"]
    mal = m.memory_attention.layer
    m.memory_attention.d_model = ma["d_model"]
    m.memory_attention.num_layers = ma["num_layers"]
    mal.d_model = ma["d_model"]
    mal.dim_feedforward = ma["dim_feedforward"]
    sa, ca = ma["self_attention"], ma["cross_attention"]
    assert sa["kind"] == "rope" and ca["kind"] == "rope_v2"
    mal.self_attention.embedding_dim = ma["d_model"]
    mal.self_attention.feat_sizes = sa["feat_sizes"]
    mal.self_attention.num_heads = sa["num_heads"]
    mal.cross_attention.embedding_dim = ma["d_model"]
    mal.cross_attention.q_sizes = ca["q_sizes"]
    mal.cross_attention.k_sizes = ca["k_sizes"]
    mal.cross_attention.num_heads = ca["num_heads"]
    mal.cross_attention.kv_in_dim = ca["kv_in_dim"]

    me = variant["memory_encoder"]
    m.memory_encoder.out_dim = me["out_dim"]
    m.memory_encoder.in_dim = me["in_dim"]
    m.memory_encoder.position_encoding.num_pos_feats = me["pos_num_feats"]
    md = me["mask_downsampler"]
    m.memory_encoder.mask_downsampler.embed_dim = md["embed_dim"]
    m.memory_encoder.mask_downsampler.total_stride = md["total_stride"]
    m.memory_encoder.fuser.layer.dim = me["fuser"]["dim"]
    m.memory_encoder.fuser.num_layers = me["fuser"]["num_layers"]

    sp = variant["spatial_perceiver"]
    p = m.spatial_perceiver
    for key in ("depth", "dim", "dim_head", "heads", "ff_mult", "num_latents", "num_latents_2d"):
        p[key] = sp[key]
    p.pos_enc_at_key_value = sp["pos_enc_at_key_value"]
    p.concat_kv_latents = sp["concat_kv_latents"]
    p.use_self_attn = sp["use_self_attn"]
    p.position_encoding.num_pos_feats = sp["pos_num_feats"]

    m.num_maskmem = variant["tracker"]["num_maskmem"]
    # what build_sam2_video_predictor injects (architecture.md §1.5); fill_hole_area belongs to
    # the predictor class, not to SAM2Base, and plays no part in these stages
    m.binarize_mask_from_pts_for_mem_enc = variant["tracker"]["binarize_mask_from_pts_for_mem_enc"]
    md_cfg = variant["mask_decoder"]
    m.sam_mask_decoder_extra_args = {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": md_cfg["dynamic_multimask_stability_delta"],
        "dynamic_multimask_stability_thresh": md_cfg["dynamic_multimask_stability_thresh"],
    }
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    timm_backbone.create_model = orig_create_model
    return model.eval()


def redraw_weights(model, gen):
    """Replace every floating tensor of the state dict with seeded random values of a sensible
    scale for its role."""
    sd = model.state_dict()
    new = {}
    for name, t in sd.items():
        if not t.is_floating_point():
            new[name] = t
            continue
        shape = t.shape

        def randn(*s):
            return torch.randn(*s, generator=gen, dtype=torch.float32)

        def rand(*s):
            return torch.rand(*s, generator=gen, dtype=torch.float32)

        leaf = name.rsplit(".", 1)[-1]
        is_bn = ".bn." in name and "trunk" in name
        if is_bn and leaf == "running_var":
            v = 0.5 + 1.5 * rand(*shape)
        elif is_bn and leaf == "running_mean":
            v = 0.2 * randn(*shape)
        elif is_bn and leaf == "weight" and (".conv2.bn." in name or "token_mixer" in name):
            # the last BN of each residual branch, and the two token-mixer branches that are summed
            # with their input: kept small so activations do not grow tenfold per stage
            v = 0.2 + 0.3 * rand(*shape)
        elif is_bn and leaf == "weight":
            v = 0.6 + 0.8 * rand(*shape)
        elif is_bn and leaf == "bias":
            v = 0.1 * randn(*shape)
        elif leaf == "weight" and t.dim() >= 2:
            fan_in = t[0].numel()
            v = randn(*shape) / math.sqrt(fan_in)
        elif leaf == "weight" and t.dim() == 1:  # LayerNorm / LayerNorm2d
            v = 1.0 + 0.2 * randn(*shape)
        elif leaf == "bias":
            v = 0.1 * randn(*shape)
        elif leaf == "gamma":  # CXBlock layer scale (1e-6 at init)
            v = 0.5 + 0.5 * rand(*shape)
        elif name.startswith("spatial_perceiver.latents"):
            v = randn(*shape)
        else:  # embeddings, position tables, no-mem / no-obj vectors
            v = 0.5 * randn(*shape)
        new[name] = v.contiguous()
    # object present on the fixture's frames, as in the SAM 2.1 fixture
    last = max(
        int(k.split(".")[-2])
        for k in new
        if k.startswith("sam_mask_decoder.pred_obj_score_head.layers.")
    )
    key = f"sam_mask_decoder.pred_obj_score_head.layers.{last}.bias"
    new[key] = new[key].abs() + 2.0
    model.load_state_dict(new, strict=True)
    return new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default=os.path.join(ROOT, "tests/models/edgetam_test.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/edgetam_test"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    variant = json.load(open(args.variant))
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = build_model(variant)
    sd = redraw_weights(model, gen)

    S = variant["image_size"]
    e = S // variant["backbone_stride"]
    C = variant["image_encoder"]["neck"]["d_model"]
    M = variant["memory_encoder"]["out_dim"]
    out = {}

    def put(name, t):
        assert name not in out, name
        out[name] = t.detach().to(torch.float32).contiguous().clone()

    def randn(*s, scale=1.0):
        return scale * torch.randn(*s, generator=gen, dtype=torch.float32)

    with torch.no_grad():
        # ---------------- image encoder ----------------
        image = randn(1, 3, S, S)
        put("image", image)
        body = model.image_encoder.trunk.body
        x = body.stem(image)
        put("trunk.stem", x)
        stage_names = [n for n, _ in body.named_children() if n.startswith("stages_")]
        feats = []
        for s, sname in enumerate(stage_names):
            stage = getattr(body, sname)
            x = stage.downsample(x)
            if s > 0:
                put(f"trunk.stages.{s}.downsample", x)
            nb = len(stage.blocks)
            for b, blk in enumerate(stage.blocks):
                x = blk(x)
                # the last block's output is trunk.out.{s}; not stored twice
                if b + 1 < nb:
                    put(f"trunk.stages.{s}.blocks.{b}", x)
            feats.append(x)
        trunk_out = model.image_encoder.trunk(image)
        assert len(trunk_out) == len(feats)
        for k, (a, b) in enumerate(zip(trunk_out, feats)):
            assert torch.equal(a, b), f"stage-by-stage trunk differs at {k}"
            put(f"trunk.out.{k}", a)

        fpn, pos = model.image_encoder.neck(trunk_out)
        enc = model.image_encoder(image)
        nlev = len(enc["backbone_fpn"])
        for k in range(len(fpn)):
            if k < nlev:
                # identical to encoder.backbone_fpn.{k} / encoder.vision_pos_enc.{k}; not stored twice
                assert torch.equal(fpn[k], enc["backbone_fpn"][k])
                assert torch.equal(pos[k], enc["vision_pos_enc"][k])
            else:
                put(f"neck.fpn.{k}", fpn[k])
                put(f"neck.pos.{k}", pos[k])
        for k in range(nlev):
            put(f"encoder.backbone_fpn.{k}", enc["backbone_fpn"][k])
            put(f"encoder.vision_pos_enc.{k}", enc["vision_pos_enc"][k])
        fi = model.forward_image(image)
        for k in range(2):
            put(f"forward_image.backbone_fpn.{k}", fi["backbone_fpn"][k])

        # ---------------- memory encoder ----------------
        pix_feat = enc["backbone_fpn"][-1]
        put("memenc.pix_feat", pix_feat)
        logits = randn(1, 1, S, S, scale=4.0)
        mask = torch.sigmoid(logits) * 20.0 - 10.0
        put("memenc.mask", mask)
        menc = model.memory_encoder
        ds = menc.mask_downsampler(mask)
        put("memenc.mask_downsampler", ds)
        fused = menc.fuser(menc.pix_feat_proj(pix_feat) + ds)
        put("memenc.fuser", fused)
        mo = menc(pix_feat, mask, skip_mask_sigmoid=True)
        put("memenc.features", mo["vision_features"])
        put("memenc.pos", mo["vision_pos_enc"][0])

        # ---------------- spatial perceiver ----------------
        per = model.spatial_perceiver
        pin, ppos = mo["vision_features"], mo["vision_pos_enc"][0]
        put("perceiver.in.features", pin)
        put("perceiver.in.pos", ppos)
        # per-layer latents of both paths (hooks on the shared layers: the 1D path runs first)
        seen = []
        hooks = [
            layer.register_forward_hook(lambda mod, inp, o, i=i: seen.append((i, o)))
            for i, layer in enumerate(per.layers)
        ]
        lat, lpos = per(pin, ppos)
        for h in hooks:
            h.remove()
        depth = len(per.layers)
        assert len(seen) == 2 * depth
        for j, (i, o) in enumerate(seen):
            path = "1d" if j < depth else "2d"
            put(f"perceiver.{path}.layers.{i}", o)
        put("perceiver.out.features", lat)
        put("perceiver.out.pos", lpos)

        # ---------------- SAM2Base glue: _encode_new_memory (memory encoder + perceiver) --------
        _, vision_feats, vision_pos, feat_sizes = model._prepare_backbone_features(
            model.forward_image(image)
        )
        put("encode_new_memory.input_vision_feat", vision_feats[-1])
        enc_cases = {
            # logits, object score, is_mask_from_pts (binarized) or not (sigmoid)
            "pos": (logits, 3.0, True),
            "neg": (randn(1, 1, S, S, scale=4.0), -3.0, False),
            "third": (randn(1, 1, S, S, scale=4.0), 1.5, False),
        }
        mems = {}
        for case, (hm, score, from_pts) in enc_cases.items():
            score_t = torch.tensor([[score]], dtype=torch.float32)
            f_, p_ = model._encode_new_memory(
                current_vision_feats=vision_feats,
                feat_sizes=feat_sizes,
                pred_masks_high_res=hm,
                object_score_logits=score_t,
                is_mask_from_pts=from_pts,
            )
            mems[case] = (f_, p_)
            if case == "third":
                continue
            put(f"encode_new_memory.{case}.pred_masks_high_res", hm)
            put(f"encode_new_memory.{case}.object_score_logits", score_t)
            put(f"encode_new_memory.{case}.is_mask_from_pts", torch.tensor([float(from_pts)]))
            put(f"encode_new_memory.{case}.features", f_)
            put(f"encode_new_memory.{case}.pos", p_[0])

        # ---------------- _prepare_memory_conditioned_features, frame 3 of 24 ----------------
        # cond frame 0, non-cond frames 1 and 2; their memories stored in bf16 as the predictor does
        frame_mem = {0: mems["pos"][0], 1: mems["neg"][0], 2: mems["third"][0]}
        frame_ptr = {0: randn(1, C, scale=0.5), 1: randn(1, C, scale=0.5), 2: model.no_obj_ptr.clone()}
        output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        for fidx in (0, 1, 2):
            stored = frame_mem[fidx].to(torch.bfloat16)
            put(f"prepare_memory.maskmem_features.{fidx}", stored.float())
            put(f"prepare_memory.obj_ptr.{fidx}", frame_ptr[fidx])
            key = "cond_frame_outputs" if fidx == 0 else "non_cond_frame_outputs"
            output_dict[key][fidx] = {
                "maskmem_features": stored,
                "maskmem_pos_enc": mems["pos"][1],
                "obj_ptr": frame_ptr[fidx],
            }
        for case in ("neg", "third"):
            assert torch.equal(mems[case][1][0], mems["pos"][1][0])  # the memory PE is shared
        put("prepare_memory.maskmem_pos_enc", mems["pos"][1][0])
        put("prepare_memory.frame_idx", torch.tensor([3.0]))
        put("prepare_memory.num_frames", torch.tensor([float(NUM_FRAMES_FOR_PTRS)]))

        # ---------------- memory attention, with the inputs prepare_memory hands it -----------
        mat = model.memory_attention
        captured = {}
        seen = []
        hooks = [
            mat.register_forward_pre_hook(
                lambda mod, a, kw: captured.update(kw), with_kwargs=True
            )
        ]
        hooks += [
            layer.register_forward_hook(lambda mod, inp, o, i=i: seen.append((i, o)))
            for i, layer in enumerate(mat.layers)
        ]
        pix_mem = model._prepare_memory_conditioned_features(
            frame_idx=3,
            is_init_cond_frame=False,
            current_vision_feats=vision_feats[-1:],
            current_vision_pos_embeds=vision_pos[-1:],
            feat_sizes=feat_sizes[-1:],
            output_dict=output_dict,
            num_frames=NUM_FRAMES_FOR_PTRS,
            track_in_reverse=False,
        )
        for h in hooks:
            h.remove()
        put("prepare_memory.out", pix_mem)
        n_ptr = int(captured["num_obj_ptr_tokens"])
        n_frames = int(captured["num_spatial_mem"])
        per_frame = lat.shape[1]
        assert n_frames == 3 and n_ptr == 3 * (C // M), (n_frames, n_ptr)
        assert captured["memory"].shape[0] == n_frames * per_frame + n_ptr
        put("memattn.curr", captured["curr"][0])
        put("memattn.curr_pos", captured["curr_pos"][0])
        put("memattn.memory", captured["memory"])
        put("memattn.memory_pos", captured["memory_pos"])
        put("memattn.num_obj_ptr_tokens", torch.tensor([float(n_ptr)]))
        put("memattn.num_spatial_mem", torch.tensor([float(n_frames)]))
        assert len(seen) == len(mat.layers)
        for i, o in seen:
            put(f"memattn.layers.{i}", o)
        mout = mat(
            curr=captured["curr"][0],
            curr_pos=captured["curr_pos"][0],
            memory=captured["memory"],
            memory_pos=captured["memory_pos"],
            num_obj_ptr_tokens=n_ptr,
            num_spatial_mem=n_frames,
        )
        put("memattn.out", mout)
        assert torch.equal(mout.permute(1, 2, 0).reshape(1, C, e, e), pix_mem)

    for k, v in out.items():
        assert torch.isfinite(v).all(), k
        assert v.abs().max() > 0 or k.endswith("is_mask_from_pts"), f"{k} is all zeros"
    os.makedirs(args.out, exist_ok=True)
    torch.save({"model": sd}, os.path.join(args.out, "model.pt"))
    save_file(out, os.path.join(args.out, "stages.safetensors"), metadata={"seed": str(args.seed)})
    total = sum(v.numel() * 4 for v in out.values())
    print(f"wrote {len(out)} tensors ({total / 1e6:.2f} MB) and {len(sd)} weights to {args.out}")
    for k, v in out.items():
        print(f"  {k:40s} {list(v.shape)}  rms {v.square().mean().sqrt().item():.3g}")


if __name__ == "__main__":
    sys.exit(main())
