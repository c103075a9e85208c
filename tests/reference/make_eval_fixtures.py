#!/usr/bin/env python3
"""Build the J&F fixtures under tests/fixtures/eval/ and score them with the OFFICIAL SA-V
evaluator (facebookresearch/sam2 `sav_dataset/`), which is not committed here and not in the pip
package: pass the folder holding `sav_evaluator.py` and `utils/sav_benchmark.py` with
--sav-evaluator-dir (or the SAV_EVALUATOR_DIR environment variable). See docs/eval.md.

Cases (each: gt/ and pred/ PNG trees, official_results*.csv as the official code wrote them,
expected.json with every per-object and global number at full precision):

- sav_mixed: SA-V layout, three videos of odd sizes; objects that appear late, vanish, get empty
  predictions, false positives before appearance and after vanishing, holes, masks touching the
  image border; predictions saved as 8-bit grey, 0/1 grey and 1-bit PNGs.
- davis_multi: DAVIS-style palette PNGs with several objects per frame, a late object, a
  predicted id absent from the ground truth.
- synth_shift: the ground truth of `vosbench synth` (committed copy) against the same masks
  moved by (dx, dy); needs --synth-dir, the output of
  `vosbench synth --out DIR --videos 2 --frames 24 --size 320x240 --seed 7`.

Both the SA-V protocol (first/last annotated frames skipped) and --do_not_skip_first_and_last_frame
are recorded.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image


def disc(h, w, cy, cx, ry, rx):
    y, x = np.mgrid[0:h, 0:w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def rect(h, w, y0, x0, y1, x1):
    m = np.zeros((h, w), bool)
    m[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return m


def jitter(rng, m, p=0.02):
    """Flip a few pixels near and away from the mask, like a noisy prediction."""
    flip = rng.random(m.shape) < p
    return m ^ flip


def save(path, m, mode="L255"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "L255":
        Image.fromarray(m.astype(np.uint8) * 255, "L").save(path)
    elif mode == "L1":
        Image.fromarray(m.astype(np.uint8), "L").save(path)
    elif mode == "bit":
        Image.fromarray(m.astype(bool)).convert("1").save(path)
    else:
        raise ValueError(mode)


def save_palette(path, labels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(labels.astype(np.uint8), "P")
    pal = []
    for i in range(256):
        pal += [(i * 37) % 256, (i * 91) % 256, (i * 53) % 256]
    im.putpalette(pal)
    im.save(path)


def make_sav_mixed(root, rng):
    gt, pr = os.path.join(root, "gt"), os.path.join(root, "pred")
    # vid_a: 97x61, 9 annotated frames.
    h, w = 61, 97
    frames = [f"{4 * i:05d}.png" for i in range(9)]
    for i, fn in enumerate(frames):
        # 000: a moving disc, noisy prediction.
        g = disc(h, w, 30, 20 + 5 * i, 12, 15)
        save(f"{gt}/vid_a/000/{fn}", g)
        save(f"{pr}/vid_a/000/{fn}", jitter(rng, disc(h, w, 31, 21 + 5 * i, 11, 15)))
        # 001: appears at frame 4; prediction fires early at frame 2, then tracks.
        g = rect(h, w, 10, 50, 25, 70 + i) if i >= 4 else np.zeros((h, w), bool)
        p = rect(h, w, 12, 52, 27, 68 + i) if i >= 2 else np.zeros((h, w), bool)
        save(f"{gt}/vid_a/001/{fn}", g)
        save(f"{pr}/vid_a/001/{fn}", p, "L1")
        # 002: present throughout, never predicted.
        g = disc(h, w, 45, 70, 8, 10)
        save(f"{gt}/vid_a/002/{fn}", g)
        save(f"{pr}/vid_a/002/{fn}", np.zeros((h, w), bool))
        # 003: vanishes after frame 4; prediction lingers two frames, then empty.
        g = disc(h, w, 15, 15, 6, 6) if i <= 4 else np.zeros((h, w), bool)
        p = disc(h, w, 15, 16, 6, 6) if i <= 6 else np.zeros((h, w), bool)
        save(f"{gt}/vid_a/003/{fn}", g)
        save(f"{pr}/vid_a/003/{fn}", p)
        # 004: good prediction plus a false-positive blob far away.
        g = rect(h, w, 40, 5, 58, 30)
        p = rect(h, w, 41, 5, 58, 31) | disc(h, w, 8, 88, 4, 5)
        save(f"{gt}/vid_a/004/{fn}", g)
        save(f"{pr}/vid_a/004/{fn}", p)
    # vid_b: 150x113, 6 frames, a ring (hole) and a mask touching the right/bottom border.
    h, w = 113, 150
    frames = [f"{4 * i:05d}.png" for i in range(6)]
    for i, fn in enumerate(frames):
        ring = disc(h, w, 50, 60 + 3 * i, 30, 35) & ~disc(h, w, 50, 60 + 3 * i, 12, 14)
        save(f"{gt}/vid_b/000/{fn}", ring)
        save(f"{pr}/vid_b/000/{fn}", jitter(rng, disc(h, w, 50, 61 + 3 * i, 29, 36), 0.01), "bit")
        edge = rect(h, w, 80 + i, 120 - 2 * i, h, w)
        save(f"{gt}/vid_b/001/{fn}", edge)
        save(f"{pr}/vid_b/001/{fn}", rect(h, w, 78 + i, 118 - 2 * i, h, w - 1), "bit")
    # vid_c: 64x48, 5 frames; late object that is only predicted empty, plus a 1-pixel object.
    h, w = 48, 64
    frames = [f"{4 * i:05d}.png" for i in range(5)]
    for i, fn in enumerate(frames):
        g = rect(h, w, 0, 0, 10, 12) if i >= 2 else np.zeros((h, w), bool)
        save(f"{gt}/vid_c/007/{fn}", g)
        save(f"{pr}/vid_c/007/{fn}", rect(h, w, 0, 0, 9, 12) if i == 3 else np.zeros((h, w), bool))
        g = np.zeros((h, w), bool)
        g[20 + i, 30] = True
        save(f"{gt}/vid_c/010/{fn}", g)
        save(f"{pr}/vid_c/010/{fn}", g if i % 2 == 0 else np.roll(g, 2, axis=1))


def make_davis_multi(root, rng):
    gt, pr = os.path.join(root, "gt"), os.path.join(root, "pred")
    for vid, (h, w, n) in {"dv1": (53, 91, 7), "dv2": (30, 40, 5)}.items():
        for i in range(n):
            fn = f"{i:05d}.png"
            lg = np.zeros((h, w), np.uint8)
            lp = np.zeros((h, w), np.uint8)
            lg[disc(h, w, h // 2, w // 4 + 2 * i, h // 4, w // 6)] = 1
            lp[disc(h, w, h // 2 + 1, w // 4 + 2 * i, h // 4, w // 6 + 1)] = 1
            lg[rect(h, w, 2, w // 2, h // 3, w // 2 + 10)] = 2
            if i % 3 != 1:
                lp[rect(h, w, 3, w // 2, h // 3, w // 2 + 11)] = 2
            if i >= 2:
                lg[disc(h, w, h - 8, w - 10, 5, 7)] = 3
            if i >= 3:
                lp[disc(h, w, h - 8, w - 11, 5, 7)] = 3
            if vid == "dv1" and i in (1, 4):
                lp[rect(h, w, h - 6, 2, h - 1, 9)] = 4
            lp[jitter(rng, np.zeros((h, w), bool), 0.003)] = 1
            save_palette(f"{gt}/{vid}/{fn}", lg)
            save_palette(f"{pr}/{vid}/{fn}", lp)


def shift(m, dx, dy):
    out = np.zeros_like(m)
    h, w = m.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = m[ys, xs]
    return out


def make_synth_shift(root, synth_dir, dx, dy):
    ann = os.path.join(synth_dir, "Annotations_6fps")
    gt, pr = os.path.join(root, "gt"), os.path.join(root, "pred")
    shutil.copytree(ann, gt)
    for vid in sorted(os.listdir(gt)):
        for obj in sorted(os.listdir(os.path.join(gt, vid))):
            for fn in sorted(os.listdir(os.path.join(gt, vid, obj))):
                m = np.array(Image.open(os.path.join(gt, vid, obj, fn))) > 0
                save(os.path.join(pr, vid, obj, fn), shift(m, dx, dy))


def run_official(benchmark, root, skip):
    gt, pr = os.path.join(root, "gt"), os.path.join(root, "pred")
    gjf, gj, gf, objs = benchmark([gt], [pr], strict=True, num_processes=2, verbose=False, skip_first_and_last=skip)
    csv_name = "official_results.csv" if skip else "official_results_noskip.csv"
    shutil.move(os.path.join(pr, "results.csv"), os.path.join(root, csv_name))
    objects = []
    for seq, (iou, bf) in objs[0].items():
        for k in iou:
            objects.append({"sequence": seq, "obj": str(k), "J": float(iou[k]), "F": float(bf[k])})
    return {
        "csv": csv_name,
        "global": {"J&F": float(gjf[0]), "J": float(gj[0]), "F": float(gf[0])},
        "objects": objects,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sav-evaluator-dir", default=os.environ.get("SAV_EVALUATOR_DIR"),
                    help="folder with sav_evaluator.py and utils/sav_benchmark.py (facebookresearch/sam2 sav_dataset/)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "eval"))
    ap.add_argument("--synth-dir", help="output of `vosbench synth --out DIR --videos 2 --frames 24 --size 320x240 --seed 7`")
    ap.add_argument("--shift", default="3,-2", help="dx,dy of the synth_shift predictions")
    args = ap.parse_args()
    if not args.sav_evaluator_dir:
        sys.exit("need --sav-evaluator-dir or SAV_EVALUATOR_DIR (see docs/eval.md)")
    sys.path.insert(0, os.path.abspath(args.sav_evaluator_dir))
    from utils.sav_benchmark import benchmark  # the official evaluator

    cases = {"sav_mixed": make_sav_mixed, "davis_multi": make_davis_multi}
    if args.synth_dir:
        dx, dy = (int(v) for v in args.shift.split(","))
        cases["synth_shift"] = lambda root, rng: make_synth_shift(root, args.synth_dir, dx, dy)
    for name, make in cases.items():
        root = os.path.join(args.out, name)
        shutil.rmtree(root, ignore_errors=True)
        make(root, np.random.default_rng(20240))
        expected = {"skip": run_official(benchmark, root, True), "noskip": run_official(benchmark, root, False)}
        if name == "synth_shift":
            expected["shift"] = [dx, dy]
        with open(os.path.join(root, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        print(name, expected["skip"]["global"], expected["noskip"]["global"])


if __name__ == "__main__":
    main()
