"""Write a checkpoint in the HuggingFace-transformers layout, made by transformers' own code, so the
Rust converter's HF path is tested on a real HF file rather than on its own inverse.

Steps: load an official-code test checkpoint (tests/fixtures/{sam2,edgetam}_test/model.pt), rename
it with `replace_keys` from transformers' `convert_sam2_video_to_hf.py` or
`convert_edgetam_video_to_hf.py` (passed with --convert-script: the file from the transformers
repository, or a copy of its KEYS_TO_MODIFY_MAPPING/replace_keys), load it into a
`Sam2VideoModel` / `EdgeTamVideoModel` built for the same small variant with `strict=True`, and
write it with `save_pretrained` (model.safetensors, the way the hub files are written).

    PYTHONPATH=/root/venvs/sam2pkg /root/venvs/ref/bin/python tests/reference/make_hf_layout_fixture.py \
        --convert-script /path/to/convert_sam2_video_to_hf.py \
        --checkpoint tests/fixtures/sam2_test/model.pt --variant tests/models/sam2.1_test.json \
        --out tests/fixtures/weights/sam2_test_hf
    PYTHONPATH=/root/venvs/edgetampkg /root/venvs/ref/bin/python tests/reference/make_hf_layout_fixture.py \
        --convert-script /path/to/convert_edgetam_video_to_hf.py \
        --checkpoint tests/fixtures/edgetam_test/model.pt --variant tests/models/edgetam_test.json \
        --out tests/fixtures/weights/edgetam_test_hf
"""

import argparse
import importlib.util
import json
import os

import torch
import transformers
from transformers import (
    EdgeTamVideoConfig,
    EdgeTamVideoMaskDecoderConfig,
    EdgeTamVideoModel,
    EdgeTamVideoPromptEncoderConfig,
    EdgeTamVisionConfig,
    Sam2HieraDetConfig,
    Sam2VideoConfig,
    Sam2VideoMaskDecoderConfig,
    Sam2VideoModel,
    Sam2VideoPromptEncoderConfig,
    Sam2VisionConfig,
    TimmWrapperConfig,
)


def load_module(path):
    spec = importlib.util.spec_from_file_location("hf_convert", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def hf_config(v):
    t = v["image_encoder"]["trunk"]
    assert t["type"] == "hiera", "only Hiera variants are built here"
    dims, heads = [t["embed_dim"]], [t["num_heads"]]
    for _ in t["stages"][1:]:
        dims.append(int(dims[-1] * t["dim_mul"]))
        heads.append(int(heads[-1] * t["head_mul"]))
    s = v["image_size"]
    backbone = Sam2HieraDetConfig(
        hidden_size=t["embed_dim"],
        num_attention_heads=t["num_heads"],
        image_size=[s, s],
        blocks_per_stage=t["stages"],
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=heads,
        window_size_per_stage=t["window_spec"],
        global_attention_blocks=t["global_att_blocks"],
        window_positional_embedding_background_size=t["window_pos_embed_bkg_spatial_size"],
        mlp_ratio=t["mlp_ratio"],
    )
    neck = v["image_encoder"]["neck"]
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=neck["backbone_channel_list"],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=neck["d_model"],
    )
    d = neck["d_model"]
    md = v["mask_decoder"]
    ma = v["memory_attention"]
    me = v["memory_encoder"]
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(
            hidden_size=d, image_size=s, patch_size=v["backbone_stride"],
            mask_input_channels=v["prompt_encoder"]["mask_in_chans"],
        ),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(
            hidden_size=d, mlp_dim=md["transformer_mlp_dim"], num_hidden_layers=md["transformer_depth"],
            num_attention_heads=md["transformer_num_heads"], iou_head_depth=md["iou_head_depth"],
            iou_head_hidden_dim=md["iou_head_hidden_dim"],
        ),
        image_size=s,
        num_maskmem=v["tracker"]["num_maskmem"],
        memory_attention_hidden_size=ma["d_model"],
        memory_attention_num_layers=ma["num_layers"],
        memory_attention_feed_forward_hidden_size=ma["dim_feedforward"],
        memory_attention_rope_feat_sizes=ma["self_attention"]["feat_sizes"],
        memory_encoder_hidden_size=me["in_dim"],
        memory_encoder_output_channels=me["out_dim"],
        mask_downsampler_embed_dim=me["mask_downsampler"]["embed_dim"],
        memory_fuser_embed_dim=me["fuser"]["dim"],
        memory_fuser_intermediate_dim=4 * me["fuser"]["dim"],
        enable_occlusion_spatial_embedding=v["tracker"]["no_obj_embed_spatial"],
        enable_temporal_pos_encoding_for_object_pointers=v["tracker"]["proj_tpos_enc_in_obj_ptrs"],
    )


def hf_edgetam_config(v):
    t = v["image_encoder"]["trunk"]
    assert t["type"] == "repvit"
    s = v["image_size"]
    backbone = TimmWrapperConfig(
        architecture=t["timm_name"].split(".")[0],
        model_args={
            "in_chans": 3,
            "features_only": True,
            "out_indices": (0, 1, 2, 3),
            "embed_dim": tuple(t["embed_dims"]),
            "depth": tuple(t["depths"]),
        },
    )
    neck = v["image_encoder"]["neck"]
    vision = EdgeTamVisionConfig(
        backbone_config=backbone,
        backbone_channel_list=neck["backbone_channel_list"],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=neck["d_model"],
    )
    d = neck["d_model"]
    md, ma, me, pr = v["mask_decoder"], v["memory_attention"], v["memory_encoder"], v["spatial_perceiver"]
    return EdgeTamVideoConfig(
        vision_config=vision,
        prompt_encoder_config=EdgeTamVideoPromptEncoderConfig(
            hidden_size=d, image_size=s, patch_size=v["backbone_stride"],
            mask_input_channels=v["prompt_encoder"]["mask_in_chans"],
        ),
        mask_decoder_config=EdgeTamVideoMaskDecoderConfig(
            hidden_size=d, mlp_dim=md["transformer_mlp_dim"], num_hidden_layers=md["transformer_depth"],
            num_attention_heads=md["transformer_num_heads"], iou_head_depth=md["iou_head_depth"],
            iou_head_hidden_dim=md["iou_head_hidden_dim"],
        ),
        image_size=s,
        num_maskmem=v["tracker"]["num_maskmem"],
        memory_attention_hidden_size=ma["d_model"],
        memory_attention_num_layers=ma["num_layers"],
        memory_attention_mlp_hidden_size=ma["dim_feedforward"],
        memory_attention_rope_feat_sizes=ma["cross_attention"]["q_sizes"],
        memory_attention_rope_k_sizes=ma["cross_attention"]["k_sizes"],
        perceiver_resampler_num_latents=pr["num_latents"],
        perceiver_resampler_num_latents_2d=pr["num_latents_2d"],
        perceiver_resampler_hidden_size=pr["dim"],
        perceiver_resampler_mlp_intermediate_size=pr["dim"] * pr["ff_mult"],
        perceiver_resampler_num_attention_heads=pr["heads"],
        perceiver_resampler_attention_head_dim=pr["dim_head"],
        perceiver_resampler_num_layers=pr["depth"],
        memory_encoder_hidden_size=me["in_dim"],
        memory_encoder_output_channels=me["out_dim"],
        mask_downsampler_embed_dim=me["mask_downsampler"]["embed_dim"],
        memory_fuser_embed_dim=me["fuser"]["dim"],
        memory_fuser_intermediate_dim=4 * me["fuser"]["dim"],
        enable_occlusion_spatial_embedding=v["tracker"]["no_obj_embed_spatial"],
        enable_temporal_pos_encoding_for_object_pointers=v["tracker"]["proj_tpos_enc_in_obj_ptrs"],
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convert-script", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(2)
    conv = load_module(a.convert_script)
    with open(a.variant) as f:
        v = json.load(f)
    edgetam = v["image_encoder"]["trunk"]["type"] == "repvit"
    config = hf_edgetam_config(v) if edgetam else hf_config(v)
    sd = torch.load(a.checkpoint, map_location="cpu", weights_only=True)["model"]
    sd = conv.replace_keys(sd) if edgetam else conv.replace_keys(sd, config)
    model = (EdgeTamVideoModel if edgetam else Sam2VideoModel)(config).eval()
    # transformers hard-codes the cross-attention key/value width to 64 (the memory width of every
    # released variant); the small test variant stores 32-wide memories, so give those projections
    # the variant's width. Nothing else about the model is changed.
    mem = v["memory_encoder"]["out_dim"]
    for layer in model.memory_attention.layers:
        att = layer.cross_attn_image
        att.k_proj = torch.nn.Linear(mem, att.k_proj.out_features)
        att.v_proj = torch.nn.Linear(mem, att.v_proj.out_features)
    model.load_state_dict(sd, strict=True)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    print(f"{a.out}: transformers {transformers.__version__}, {len(sd)} converted keys")


if __name__ == "__main__":
    main()
