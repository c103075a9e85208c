#!/usr/bin/env python3
"""Write the seed corpus of the vosbench fuzz targets into fuzz/seeds/<target>/.

Small valid files of each format, built with the standard library only (no Pillow, no torch):
PNG masks (grey 1/2/4/8/16-bit, palette, grey+alpha, RGB, RGBA, interlaced), frame caches,
safetensors files, torch.save-style zips (stored entries, protocol-2 pickle with persistent
storages, as torch writes them), prompt strings and prompt files, transformers key names.
JPEG seeds are copied from tests/fixtures/jpeg. metadata.json, inference_config.json and the
results CSV come from the crate's own writers: pass `--bench-out DIR`, the --out-dir of a
`vosbench bench --demo --random-weights ...` run (see fuzz/README.md).

Usage: python3 fuzz/make_seeds.py [--bench-out DIR]
"""
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")


def out(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- PNG
def chunk(kind, body):
    c = kind + body
    return struct.pack(">I", len(body)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)


def png(w, h, depth, color, rows, palette=None, interlace=0, trns=None):
    """rows: list of raw scanline bytes (without the filter byte)."""
    raw = b"".join(b"\x00" + r for r in rows)
    s = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if palette is not None:
        s += chunk(b"PLTE", palette)
    if trns is not None:
        s += chunk(b"tRNS", trns)
    s += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return s


def pack_bits(values, depth):
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(values), per):
        b = 0
        for j, v in enumerate(values[i:i + per]):
            b |= v << (8 - depth * (j + 1))
        out.append(b)
    return bytes(out)


def png_seeds():
    w, h = 7, 5
    lab = [[(x * y + x) % 4 for x in range(w)] for y in range(h)]
    out("png_mask", "grey8.png", png(w, h, 8, 0, [bytes(255 if v else 0 for v in r) for r in lab]))
    for d in (1, 2, 4):
        out("png_mask", f"grey{d}.png", png(w, h, d, 0, [pack_bits([min(v, (1 << d) - 1) for v in r], d) for r in lab]))
    out("png_mask", "grey16.png", png(w, h, 16, 0, [b"".join(struct.pack(">H", v * 300) for v in r) for r in lab]))
    pal = bytes([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0])
    out("png_mask", "palette8.png", png(w, h, 8, 3, [bytes(r) for r in lab], palette=pal))
    out("png_mask", "palette2.png", png(w, h, 2, 3, [pack_bits(r, 2) for r in lab], palette=pal, trns=b"\x00"))
    out("png_mask", "greyalpha.png", png(w, h, 8, 4, [bytes(c for v in r for c in (v * 60, 255)) for r in lab]))
    out("png_mask", "rgb.png", png(w, h, 8, 2, [bytes(c for v in r for c in (v * 60, 0, 0)) for r in lab]))
    out("png_mask", "rgba16.png", png(3, 2, 16, 6, [bytes(8 * 3)] * 2))
    out("png_mask", "interlaced.png", png(9, 9, 8, 0, [bytes((x + y) % 2 * 255 for x in range(9)) for y in range(9)], interlace=1))


# ---------------------------------------------------------------- frame cache (.vfc)
def vfc(frames, side, ow, oh, extra=b""):
    head = b"VOSBFC01" + struct.pack("<7I", 64, frames, side, ow, oh, 3, 0) + bytes(28)
    body = bytes((i * 7) % 256 for i in range(frames * side * side * 3))
    return head + body + extra


def vfc_seeds():
    out("frame_cache", "f2_s4.vfc", vfc(2, 4, 40, 30))
    out("frame_cache", "f1_s1.vfc", vfc(1, 1, 1, 1))
    out("frame_cache", "f3_s8.vfc", vfc(3, 8, 16, 9))
    out("frame_cache", "truncated.vfc", vfc(2, 4, 40, 30)[:-5])


# ---------------------------------------------------------------- safetensors
def safetensors(tensors, metadata=None):
    header = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_seeds():
    f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    out("safetensors", "two.safetensors", safetensors({
        "image_encoder.trunk.pos_embed": ("F32", [1, 2], f32(0.5, -1.0)),
        "sam_mask_decoder.iou_token.weight": ("F16", [2], b"\x00\x3c\x00\xbc"),
    }, {"format": "pt"}))
    out("safetensors", "dtypes.safetensors", safetensors({
        "a": ("BF16", [1], b"\x80\x3f"), "b": ("I64", [1], struct.pack("<q", 7)),
        "c": ("U8", [3], b"\x01\x02\x03"), "d": ("F64", [], struct.pack("<d", 1.5)),
        "e": ("U32", [1], struct.pack("<I", 9)), "f": ("I32", [1], struct.pack("<i", -1)),
    }))
    out("safetensors", "empty.safetensors", safetensors({}))


# ---------------------------------------------------------------- torch.save zip
class _Global:
    """Pickled as GLOBAL module\\nname, like a torch class or function."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # save_reduce wants a callable
        raise NotImplementedError


class _Storage:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


class _Rebuild:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, _OrderedDict())


class _OrderedDict:
    pass


class _Pickler(pickle._Pickler):
    """Writes what torch.save writes for a dict of tensors, without torch."""

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None

    def save_global(self, obj, name=None):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")
            self.memoize(obj)
            return
        return super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_rebuild(self, obj):
        self.save_reduce(_Global("torch._utils", "_rebuild_tensor_v2"), obj.args, obj=obj)

    def _save_ordered(self, obj):
        self.save_reduce(_Global("collections", "OrderedDict"), (), obj=obj)

    def _save_g(self, obj):
        self.save_global(obj)


_Pickler.dispatch[_Rebuild] = _Pickler._save_rebuild
_Pickler.dispatch[_OrderedDict] = _Pickler._save_ordered
_Pickler.dispatch[_Global] = _Pickler._save_g


def torch_zip(state, storages, under_model=True, archive="archive"):
    buf = io.BytesIO()
    obj = {"model": state} if under_model else state
    p = _Pickler(buf, protocol=2)
    p.dispatch_table = {}
    p.dump(obj)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", buf.getvalue())
        for key, raw in storages.items():
            zf.writestr(f"{archive}/data/{key}", raw)
        zf.writestr(f"{archive}/version", "3\n")
    return z.getvalue()


def pt_seeds():
    fl = _Global("torch", "FloatStorage")
    hf = _Global("torch", "HalfStorage")
    s0 = _Storage(fl, "0", 6)
    s1 = _Storage(hf, "1", 2)
    state = {
        "image_encoder.trunk.pos_embed": _Rebuild(s0, 0, [2, 3], [3, 1]),
        "sam_mask_decoder.iou_token.weight": _Rebuild(s1, 0, [2], [1]),
        "shared.view": _Rebuild(s0, 0, [3, 2], [1, 3]),
    }
    raw0 = struct.pack("<6f", *range(6))
    out("pt_reader", "model_key.pt", torch_zip(state, {"0": raw0, "1": b"\x00\x3c\x00\xbc"}))
    out("pt_reader", "bare_dict.pt", torch_zip({"w": _Rebuild(s0, 0, [6], [1])}, {"0": raw0}, under_model=False))


# ---------------------------------------------------------------- prompts
def prompt_seeds():
    out("prompts", "points_box.txt", "10,20\n30.5,40,0\n1,2,3,4")
    out("prompts", "box_only.txt", " 0, 0 ,15.5,9")
    out("prompts", "bad_label.txt", "1,2,7\n")
    objs = [{"id": 1, "steps": [{"frame": 0, "points": [[5, 6], [7, 8]], "labels": [1, 0]},
                                {"frame": 3, "box": [1, 2, 30, 40]}]},
            {"id": 2, "steps": [{"frame": 1, "mask": "m.png"}]}]
    out("prompts", "objects.json", json.dumps({"format": "vosbench-prompts-1", "video": "v", "objects": objs}))
    out("prompts", "runs.json", json.dumps({"format": "vosbench-prompts-1", "runs": {
        "a": {"sessions": "one", "families": ["sam2"], "objects": objs[:1]},
        "b": {"objects": objs}}}))
    multi = os.path.join(ROOT, "tests/fixtures/multi_object/prompts.json")
    if os.path.exists(multi) and os.path.getsize(multi) < 16384:
        shutil.copy(multi, os.path.join(SEEDS, "prompts", "fixture_multi_object.json"))


# ---------------------------------------------------------------- HF key names
def hf_seeds():
    out("hf_layout", "original.txt", "\n".join([
        "image_encoder.trunk.blocks.0.attn.qkv.weight",
        "sam_prompt_encoder.point_embeddings.2.weight",
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        "memory_attention.layers.0.cross_attn_image.q_proj.weight",
        "sam_mask_decoder.transformer.layers.1.mlp.layers.0.bias"]))
    out("hf_layout", "hf.txt", "\n".join([
        "vision_encoder.backbone.blocks.0.attn.qkv.weight",
        "prompt_encoder.point_embed.weight",
        "prompt_encoder.shared_embedding.positional_embedding",
        "shared_image_embedding.positional_embedding",
        "memory_attention.layers.0.cross_attention.k_proj.weight",
        "memory_attention.layers.0.cross_attention.v_proj.weight",
        "mask_decoder.transformer.layers.0.self_attn.q_proj.weight"]))
    out("hf_layout", "edgetam.txt", "\x01\nvision_encoder.backbone.model.stem.0.weight\nmemory_attention.layers.0.cross_attention.k_proj.weight")


# ---------------------------------------------------------------- JPEG, and the crate's writers
def jpeg_seeds():
    d = os.path.join(ROOT, "tests/fixtures/jpeg")
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        p = os.path.join(d, n)
        if n.endswith((".jpg", ".jpeg")) and os.path.getsize(p) <= 6000:
            shutil.copy(p, os.path.join(SEEDS, "jpeg", n))


def bench_seeds(bench_out):
    """metadata.json, inference_config.json and the results CSV of a demo bench run."""
    for root, _, files in os.walk(bench_out):
        for n in files:
            p = os.path.join(root, n)
            if n == "vosbench_summary.csv":
                shutil.copy(p, os.path.join(SEEDS, "results_csv", "demo_summary.csv"))
            if n in ("metadata.json", "inference_config.json"):
                with open(p, "rb") as f:
                    setattr(bench_seeds, n.split(".")[0], f.read())
    cfg = getattr(bench_seeds, "inference_config", None)
    meta = getattr(bench_seeds, "metadata", None)
    if cfg and meta:
        # the target's input: config, NUL, metadata
        out("plan_json", "demo_config_meta.json", cfg + b"\x00" + meta)


def results_seeds():
    cols = ("video,object,model,imgsz,precision,prompt,prompt_frame,frames,processed_end_frame,"
            "scored_frames,fps,fps_steady,latency_ms,latency_p50_ms,latency_p90_ms,latency_p99_ms,"
            "gpu_peak_alloc_MiB,gpu_peak_reserved_MiB,cpu_peak_rss_MiB,system_peak_MiB,"
            "mem_budget_MiB,baseline_rss_MiB,baseline_gpu_MiB,J,F,JandF,overlay,setup_ms,input_H,"
            "input_W,infer_H,infer_W,cudnn_benchmark,weights,status,error")
    row = ("v1,1,edgetam_points,256,f32,points,0,6,6,2,3.5,3.6,280.1,270,300,310,,,512.5,,2048,"
           "100,,0.5,0.6,0.55,,1200,120,160,256,256,false,random (demo),{status},{err}")
    out("results_csv", "oldest_schema.csv", cols + "\n" + row.format(status="ok", err="") + "\n"
        + row.format(status="error", err='"oom, retried"').replace("v1", "v2") + "\n")


def main():
    args = sys.argv[1:]
    for t in ("jpeg",):
        os.makedirs(os.path.join(SEEDS, t), exist_ok=True)
    png_seeds()
    vfc_seeds()
    st_seeds()
    pt_seeds()
    prompt_seeds()
    hf_seeds()
    jpeg_seeds()
    results_seeds()
    if len(args) == 2 and args[0] == "--bench-out":
        bench_seeds(args[1])
    os.makedirs(os.path.join(SEEDS, "plan_json"), exist_ok=True)
    out("plan_json", "empty_objects.json", "{}\x00{}")
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(SEEDS) for f in fs)
    print(f"seeds: {total} bytes in {SEEDS}")


if __name__ == "__main__":
    main()
