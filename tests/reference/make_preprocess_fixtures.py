"""Reference data for src/image/ (resize, normalisation), src/tracker/frames/ (folder listing)
and src/tracker/postprocess.rs.

What the official SAM 2.1 video predictor does to a JPEG folder (sam2/utils/misc.py,
load_video_frames_from_jpg_images) and to its low-res mask logits (fill_holes_in_mask_scores),
computed with Pillow / numpy / scipy and the official functions themselves.

Writes tests/fixtures/preprocess/:
  frames/            a small JPEG "video": 00000.jpg, 1.jpeg, 2.JPG, 10.jpg (83x45, quality 90,
                     4:2:0) plus files the official listing ignores: 4.Jpg (wrong case, and a
                     different size), 5.png, notes.txt
  extra/gray.jpg     a grayscale JPEG (Pillow converts L -> RGB)
  extra/q90_444.jpg  a 4:4:4 JPEG
  preprocess.safetensors (metadata: the Pillow and numpy versions), tensors:
    resize.{case}.src_fnv    uint8[8]   FNV-1a-64 (little endian) of the synthetic source image
    resize.{case}.out        uint8[H,W,3]  PIL Image.resize((W,H), BICUBIC) of it (small outputs)
    resize.{case}.bands      uint8[12,W,3] rows 0..4, H/2-2..H/2+2, H-4..H of the output (big
                             outputs), with
    resize.{case}.fnv        uint8[8]   FNV-1a-64 of the whole output (HWC bytes)
    decode.{name}            uint8[H,W,3]  Pillow's Image.open(p).convert("RGB") of each JPEG
                             (name = file name with '.' replaced by '_')
    frames.images            float32[4,3,64,64]  official load_video_frames_from_jpg_images(
                             frames/, image_size=64, offload_video_to_cpu=True) (normalized)
    frames.video_hw          int64[2]   the (video_height, video_width) it returns
    fill.{case}.input        float32[B,1,h,w]  low-res mask logits
    fill.{case}.max{A}       float32[B,1,h,w]  official fill_holes_in_mask_scores(input, A)
The case names and sizes are listed in RESIZE_CASES / FILL_CASES below; the Rust test reads the
same lists from the tensor names.

The synthetic source images are a pure integer function of (seed, x, y, c) (see `synth`), which
tests/units/preprocess.rs reimplements, so large sources need not be stored; the stored FNV of each
source proves both sides generated the same pixels.

fill_holes_in_mask_scores calls a CUDA-only kernel (sam2/csrc/connected_components.cu: 2x2-block
union-find labelling, exact 8-connectivity, per-pixel component areas). This CPU-only script swaps
in scipy.ndimage.label with a 3x3 structuring element, which yields the same areas (labels differ
but the official rule only uses `labels > 0` and the area), cross-checked against OpenCV's
8-connected labelling (the CPU fallback of the EdgeTAM package), and then runs the official
function.

Run: PYTHONPATH=/root/venvs/sam2pkg SAM2_BUILD_CUDA=0 /root/venvs/ref/bin/python \
         tests/reference/make_preprocess_fixtures.py
"""
import os
import shutil

import cv2
import numpy as np
import PIL
import scipy.ndimage as ndi
import torch
from PIL import Image
from safetensors.numpy import save_file

import sam2.utils.misc as misc

torch.set_num_threads(2)

HERE = os.path.dirname(os.path.abspath(__file__))
DST = os.path.normpath(os.path.join(HERE, "..", "fixtures", "preprocess"))

# (case name, seed, source (w, h), output (w, h))
RESIZE_CASES = [
    ("a_320x240_to_256x256", 1, (320, 240), (256, 256)),  # down in x, up in y
    ("a_320x240_to_100x37", 1, (320, 240), (100, 37)),  # strong antialiasing
    ("a_320x240_to_320x37", 1, (320, 240), (320, 37)),  # vertical pass only
    ("a_320x240_to_77x240", 1, (320, 240), (77, 240)),  # horizontal pass only
    ("a_320x240_to_320x240", 1, (320, 240), (320, 240)),  # same size: a copy
    ("b_17x29_to_1024x1024", 2, (17, 29), (1024, 1024)),  # strong upscaling
    ("b_17x29_to_5x3", 2, (17, 29), (5, 3)),
    ("b_17x29_to_1x1", 2, (17, 29), (1, 1)),
    ("c_1280x720_to_1024x1024", 3, (1280, 720), (1024, 1024)),  # the real video case
    ("c_1280x720_to_256x256", 3, (1280, 720), (256, 256)),
    ("d_1x1_to_3x2", 4, (1, 1), (3, 2)),
    # Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice as many
    # pixels as the width (Resample.c, ImagingResampleInner); these cases take that path.
    ("a_320x240_to_300x100", 1, (320, 240), (300, 100)),
    ("e_720x1280_to_1024x1024", 5, (720, 1280), (1024, 1024)),  # a portrait video frame
]
FULL_LIMIT = 128 * 128  # outputs with at most this many pixels are stored whole

# (case name, seed, B, h, w)
FILL_CASES = [
    ("a_64", 11, 3, 64, 64),
    ("b_48x80", 12, 2, 48, 80),
    ("c_nan_16", 13, 1, 16, 16),
]
FILL_AREAS = [1, 8, 30]

M32 = 0xFFFFFFFF


def synth(seed, w, h):
    """uint8 [h, w, 3]: noise, gradient and hard-edged stripes in diagonal bands."""
    y, x, c = np.meshgrid(
        np.arange(h, dtype=np.uint64),
        np.arange(w, dtype=np.uint64),
        np.arange(3, dtype=np.uint64),
        indexing="ij",
    )
    hs = ((seed * 0x9E3779B1) ^ (x * 0x85EBCA77) ^ (y * 0xC2B2AE3D) ^ (c * 0x27D4EB2F)) & M32
    hs ^= hs >> 15
    hs = (hs * 0x2C1B3C6D) & M32
    hs ^= hs >> 12
    hs = (hs * 0x297A2D39) & M32
    hs ^= hs >> 15
    noise = hs & 0xFF
    grad = (x * 3 + y * 2 + c * 50) % 256
    stripes = 255 * (((x // 3) + (y // 2) + c) % 2)
    region = ((x // 13) + (y // 11)) % 3
    out = np.where(region == 0, noise, np.where(region == 1, grad, stripes))
    return out.astype(np.uint8)


def fnv_np(a: np.ndarray) -> np.ndarray:
    """FNV-1a-64 of the array's bytes, little-endian uint8[8]."""
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    mask = 0xFFFFFFFFFFFFFFFF
    for b in a.tobytes():
        h = ((h ^ b) * prime) & mask
    return np.frombuffer(h.to_bytes(8, "little"), dtype=np.uint8).copy()


def make_resize(out):
    # The pass order, and so the exact output, depends on the Pillow version (see RESIZE_CASES).
    assert int(PIL.__version__.split(".")[0]) >= 13, f"Pillow {PIL.__version__}: need >= 13"
    srcs = {}
    for name, seed, (sw, sh), (ow, oh) in RESIZE_CASES:
        key = (seed, sw, sh)
        if key not in srcs:
            srcs[key] = synth(seed, sw, sh)
        src = srcs[key]
        res = np.array(Image.fromarray(src, "RGB").resize((ow, oh), Image.BICUBIC))
        assert res.shape == (oh, ow, 3) and res.dtype == np.uint8
        out[f"resize.{name}.src_fnv"] = fnv_np(src)
        if ow * oh <= FULL_LIMIT:
            out[f"resize.{name}.out"] = res
        else:
            m = oh // 2
            out[f"resize.{name}.bands"] = np.concatenate(
                [res[:4], res[m - 2 : m + 2], res[oh - 4 :]], axis=0
            )
            out[f"resize.{name}.fnv"] = fnv_np(res)
        print(f"resize {name}: mean {res.mean():.2f}")


def natural_frame(rng, w, h, t):
    """A smooth scene with a moving disc, an edge and mild noise (JPEG-friendly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 40 + 150 * x / max(w - 1, 1)
    img[..., 1] = 60 + 120 * y / max(h - 1, 1)
    img[..., 2] = 128 + 60 * np.sin(x / 7.0 + t)
    cx, cy = 20 + 9 * t, h / 2
    disc = (x - cx) ** 2 + (y - cy) ** 2 < 11**2
    img[disc] = [230, 30, 40]
    img[:, int(w * 0.7) :, 1] = 250  # a hard vertical edge
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_jpegs(out, rng):
    frames = os.path.join(DST, "frames")
    extra = os.path.join(DST, "extra")
    for d in (frames, extra):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    w, h = 83, 45
    names = ["00000.jpg", "1.jpeg", "2.JPG", "10.jpg"]
    for t, n in enumerate(names):
        Image.fromarray(natural_frame(rng, w, h, t), "RGB").save(
            os.path.join(frames, n), quality=90
        )
    # Files the official listing skips: the extension test is exact (.jpg .jpeg .JPG .JPEG).
    Image.fromarray(natural_frame(rng, 40, 30, 9), "RGB").save(
        os.path.join(frames, "4.Jpg"), format="JPEG", quality=90
    )
    Image.fromarray(natural_frame(rng, w, h, 5), "RGB").save(os.path.join(frames, "5.png"))
    with open(os.path.join(frames, "notes.txt"), "w") as f:
        f.write("not a frame\n")
    g = natural_frame(rng, 61, 37, 2).mean(axis=2).round().astype(np.uint8)
    Image.fromarray(g, "L").save(os.path.join(extra, "gray.jpg"), quality=90)
    Image.fromarray(natural_frame(rng, 50, 34, 3), "RGB").save(
        os.path.join(extra, "q90_444.jpg"), quality=90, subsampling=0
    )
    for d, files in ((frames, names + ["4.Jpg"]), (extra, ["gray.jpg", "q90_444.jpg"])):
        for n in files:
            rgb = np.array(Image.open(os.path.join(d, n)).convert("RGB"))
            out[f"decode.{n.replace('.', '_')}"] = rgb

    images, vh, vw = misc.load_video_frames_from_jpg_images(
        video_path=frames,
        image_size=64,
        offload_video_to_cpu=True,
        compute_device=torch.device("cpu"),
    )
    assert images.dtype == torch.float32 and tuple(images.shape) == (4, 3, 64, 64)
    out["frames.images"] = images.numpy()
    out["frames.video_hw"] = np.array([vh, vw], dtype=np.int64)


def scipy_connected_components(mask):
    """Stand-in for the CUDA kernel: labels (>0 on foreground) and per-pixel component area."""
    m = mask.cpu().numpy().astype(bool)
    labels = np.zeros(m.shape, dtype=np.int32)
    counts = np.zeros(m.shape, dtype=np.int32)
    for b in range(m.shape[0]):
        lab, n = ndi.label(m[b, 0], structure=np.ones((3, 3), dtype=bool))
        area = np.bincount(lab.ravel(), minlength=n + 1)
        area[0] = 0
        labels[b, 0] = lab
        counts[b, 0] = area[lab]
        # Cross-check with OpenCV's 8-connected labelling, the CPU fallback the EdgeTAM package
        # uses for the same function: the per-pixel areas must agree.
        _, cv_lab, stats, _ = cv2.connectedComponentsWithStats(
            m[b, 0].astype(np.uint8), connectivity=8
        )
        cv_area = stats[:, cv2.CC_STAT_AREA].astype(np.int32)
        cv_area[0] = 0
        assert np.array_equal(cv_area[cv_lab], counts[b, 0]), "scipy and cv2 areas differ"
    return torch.from_numpy(labels), torch.from_numpy(counts)


def make_fill(out):
    misc.get_connected_components = scipy_connected_components
    for name, seed, b, h, w in FILL_CASES:
        rng = np.random.default_rng(seed)
        field = np.stack([ndi.gaussian_filter(rng.normal(size=(h, w)), 1.2) for _ in range(b)])
        # Mostly foreground with many small background islands, some touching the border.
        logits = (field * 40.0 + 4.0).astype(np.float32)
        flat = logits.reshape(-1)
        idx = rng.choice(flat.size, size=max(4, flat.size // 200), replace=False)
        flat[idx[: len(idx) // 2]] = 0.0  # exactly zero counts as background
        flat[idx[len(idx) // 2 :]] = -0.0
        if "nan" in name:
            flat[rng.choice(flat.size, size=6, replace=False)] = np.nan
        x = torch.from_numpy(logits.reshape(b, 1, h, w).copy())
        out[f"fill.{name}.input"] = x.numpy().copy()
        for a in FILL_AREAS:
            y = misc.fill_holes_in_mask_scores(x.clone(), a)
            n_fill = int(((y != x) & ~torch.isnan(x)).sum())
            print(f"fill {name} max_area {a}: {n_fill} pixels filled")
            out[f"fill.{name}.max{a}"] = y.numpy().copy()


def main():
    rng = np.random.default_rng(0)
    os.makedirs(DST, exist_ok=True)
    out = {}
    make_resize(out)
    make_jpegs(out, rng)
    make_fill(out)
    dst = os.path.join(DST, "preprocess.safetensors")
    save_file(
        {k: np.ascontiguousarray(v) for k, v in out.items()},
        dst,
        metadata={"pillow": PIL.__version__, "numpy": np.__version__},
    )
    print(f"wrote {len(out)} tensors to {dst}")


if __name__ == "__main__":
    main()
