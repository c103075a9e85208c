#!/usr/bin/env python3
"""Frame time of the official PyTorch video predictor against the number of objects in one
inference state, measured like ``vosbench bench --objects-sweep`` (src/bench/sweep.rs).

Driven by tests/gpu/objects_vs_torch.sh (docs/performance.md, "Objects in one session"). The
model building, seeded weights and process-age helpers are speed_torch.py's (imported, so both
scripts build the same model from the same ``model.pt``).

Subcommands:

``run --variant V --weights model.pt --frames DIR --prompts DIR --precision bf16|f32 --json OUT``
    One timed run in this process: the official predictor (``speed_torch.build_predictor``) on
    ``--device``, then under ``torch.inference_mode()`` (and, for bf16,
    ``torch.autocast(device, dtype=torch.bfloat16)``, the official demo's setting):
    ``init_state(frames)``, ``add_new_mask(frame 0, obj_id k, mask)`` for every ``k.png`` of
    ``--prompts`` (``001.png`` ... as the vosbench sweep writes them: the very masks vosbench
    prompted with, object ids 1..N), then ``propagate_in_video`` forward. Each yielded frame's
    masks of all objects are thresholded and copied to the host (``(logits > 0).cpu()``) and the
    device synchronised before its timestamp; a frame's time runs from the previous frame's
    timestamp, the prompt frame has none, and the first ``--warmup-frames`` are left out of
    ``frame_ms_mean`` / ``frame_ms_p50`` (the same rule as the vosbench sweep). TF32 is allowed
    (``--tf32 on``, PyTorch's default for convolutions and the official demo's setting).
``table --sweep objects_sweep.csv... --json OUT.json...``
    The per-frame time of both engines per variant and object count, vosbench batched and looped
    against PyTorch, with the targets of docs/performance.md: at 8 objects vosbench batched
    <= 0.5x PyTorch's frame time, and vosbench's cost per extra object
    ((t(N) - t(1)) / (N - 1)) <= 0.3x its single-object frame.
``fail --json OUT --variant V --objects N --precision P --log LOG``
    Write an error record for a run that died (the table shows its last log line).

JSON fields: ``engine`` (pytorch), ``model``, ``objects``, ``precision``, ``tf32``, ``device``,
``device_name``, ``torch_version``, ``frames`` (frames with output, the prompt frame included),
``warmup_frames``, ``latencies_ms``, ``timed_frames``, ``frame_ms_mean``, ``frame_ms_p50``,
``fps`` (1000 / frame_ms_mean), ``object_fps`` (objects x fps), ``peak_device_alloc_bytes``,
``peak_device_reserved_bytes`` (torch's caching allocator), ``model_load_ms``,
``init_state_ms``, ``prompt_ms`` (all ``add_new_mask`` calls), ``propagate_ms``,
``mask_fraction`` ([min, mean, max] positive-pixel fraction over objects and frames).
"""

import argparse
import contextlib
import csv
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import speed_torch as st  # noqa: E402  (the shared model building and weights)

# docs/performance.md, "Objects in one session"
TARGET_OBJECTS = 8
TARGET_RATIO = 0.5
TARGET_EXTRA_OBJECT = 0.3


def frame_stats(ms):
    """(mean, median) of frame times, None when empty (the Rust side's frame_stats)."""
    if not ms:
        return None, None
    s = sorted(ms)
    n = len(s)
    p50 = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0
    return sum(ms) / n, p50


def read_prompts(folder):
    """The masks of ``folder/NNN.png`` as {object id: bool array}, ids ascending."""
    import numpy as np
    from PIL import Image

    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() != ".png" or not stem.isdigit():
            continue
        m = np.asarray(Image.open(os.path.join(folder, name)).convert("L")) > 127
        if not m.any():
            raise SystemExit(f"{folder}/{name}: empty prompt mask")
        out[int(stem)] = m
    if not out:
        raise SystemExit(f"{folder}: no prompt masks (001.png, ...)")
    return out


def run(a):
    import torch

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    tf32 = a.tf32 == "on"

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    prompts = read_prompts(a.prompts)
    t0 = time.perf_counter()
    predictor = st.build_predictor(torch, a.variant, a.weights, dev)
    if st.is_edgetam(a.variant):
        # EdgeTAM's perceiver `.view`s an expanded tensor and fails for more than one object
        # in a state (facebookresearch/EdgeTAM#15); the multi-object fixture script recompiles
        # that method with `.reshape` (same values), and so does this run.
        import make_multi_object_fixture as mof  # tests/reference, on the path after the build

        mof.allow_batched_perceiver()
    # after the build: importing the fixture modules turns TF32 off
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    sync()
    model_load_ms = (time.perf_counter() - t0) * 1e3
    if a.precision == "bf16":
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16)
    elif a.precision == "f32":
        autocast = contextlib.nullcontext()
    else:
        raise SystemExit(f"--precision {a.precision}: expected f32 or bf16")
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)

    lat, fractions, seen = [], [], set()
    with torch.inference_mode(), autocast:
        t0 = time.perf_counter()
        state = predictor.init_state(a.frames)
        sync()
        init_state_ms = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        for obj_id, mask in prompts.items():
            predictor.add_new_mask(state, frame_idx=0, obj_id=obj_id, mask=mask)
        sync()
        prompt_ms = (time.perf_counter() - t0) * 1e3
        last = None
        t_prop = time.perf_counter()
        for fidx, obj_ids, logits in predictor.propagate_in_video(state):
            m = (logits > 0.0).cpu()
            sync()
            now = time.perf_counter()
            if last is not None:
                lat.append(round((now - last) * 1e3, 3))
            if fidx not in seen:
                seen.add(fidx)
                fractions.extend(float(x) for x in m.float().flatten(1).mean(1))
            if len(obj_ids) != len(prompts):
                raise SystemExit(f"frame {fidx}: {len(obj_ids)} objects in the output, {len(prompts)} prompted")
            last = time.perf_counter()
        propagate_ms = (time.perf_counter() - t_prop) * 1e3

    steady = lat[min(a.warmup_frames, len(lat)):]
    mean, p50 = frame_stats(steady)
    fps = None if not mean else 1e3 / mean
    rec = {
        "engine": "pytorch",
        "model": a.variant,
        "objects": len(prompts),
        "precision": a.precision,
        "tf32": tf32,
        "device": a.device,
        "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch_version": torch.__version__,
        "video": os.path.normpath(a.frames),
        "frames": len(seen),
        "warmup_frames": a.warmup_frames,
        "latencies_ms": lat,
        "timed_frames": len(steady),
        "frame_ms_mean": None if mean is None else round(mean, 3),
        "frame_ms_p50": None if p50 is None else round(p50, 3),
        "fps": None if fps is None else round(fps, 3),
        "object_fps": None if fps is None else round(fps * len(prompts), 3),
        "peak_device_alloc_bytes": torch.cuda.max_memory_allocated(dev) if cuda else None,
        "peak_device_reserved_bytes": torch.cuda.max_memory_reserved(dev) if cuda else None,
        "model_load_ms": round(model_load_ms, 3),
        "init_state_ms": round(init_state_ms, 3),
        "prompt_ms": round(prompt_ms, 3),
        "propagate_ms": round(propagate_ms, 3),
        "mask_fraction": [round(min(fractions), 4), round(sum(fractions) / len(fractions), 4),
                          round(max(fractions), 4)] if fractions else None,
    }
    with open(a.json, "w") as f:
        json.dump(rec, f, indent=1)
    print(f"{a.variant} pytorch {a.precision} {len(prompts)} objects: {rec['frames']} frames, "
          f"{rec['frame_ms_mean']} ms/frame (p50 {rec['frame_ms_p50']}), masks {rec['mask_fraction']}")


def fail(a):
    line = ""
    try:
        with open(a.log, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        line = lines[-1] if lines else ""
    except OSError as e:
        line = f"no log ({e})"
    rec = {"engine": "pytorch", "model": a.variant, "objects": a.objects, "precision": a.precision,
           "error": line[:300] or "failed without output"}
    with open(a.json, "w") as f:
        json.dump(rec, f, indent=1)


def _num(v):
    return None if v in (None, "") else float(v)


def _fmt(v, spec):
    if v is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width)) if width.isdigit() else "-"
    return format(v, spec)


def _model_key(name):
    """vosbench names the model by its variant (tests/models/x.json gives x)."""
    base = os.path.basename(name)
    return base[:-len(".json")] if base.endswith(".json") else base


def extra_object_cost(times):
    """{N: (t(N) - t(1)) / (N - 1) / t(1)} over N > 1, from {N: frame ms}."""
    t1 = times.get(1)
    if not t1:
        return {}
    return {n: (t - t1) / (n - 1) / t1 for n, t in times.items() if n > 1 and t is not None}


def table(a):
    # vosbench: {(model, batching): {N: ms}} from the sweep CSVs
    vos, errors = {}, []
    for path in a.sweep:
        try:
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    key = (_model_key(r["model"]), r["batching"])
                    if r["status"] != "ok":
                        errors.append(f"vosbench {r['model']} {r['batching']} {r['objects']} objects: {r['error']}")
                        continue
                    vos.setdefault(key, {})[int(r["objects"])] = _num(r["frame_ms_mean"])
        except OSError as e:
            errors.append(f"{path}: {e}")
    torch_ms = {}
    for path in a.json:
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            errors.append(f"{path}: unreadable ({e})")
            continue
        if r.get("error"):
            errors.append(f"pytorch {r.get('model')} {r.get('objects')} objects: {r['error']}")
            continue
        torch_ms.setdefault(_model_key(r["model"]), {})[int(r["objects"])] = r.get("frame_ms_mean")
    models = sorted({m for m, _ in vos} | set(torch_ms))
    hdr = (f"{'variant':<24} {'objects':>7} {'pytorch ms':>10} {'vos batched':>11} {'vos looped':>10} "
           f"{'batched/pt':>10} {'looped/pt':>9}")
    lines = ["mean frame time (ms) over the steady frames, one inference state / session per run",
             hdr, "-" * len(hdr)]
    verdicts = []
    for m in models:
        b, lo, t = vos.get((m, "batched"), {}), vos.get((m, "looped"), {}), torch_ms.get(m, {})
        for n in sorted(set(b) | set(lo) | set(t)):
            rb = None if not (b.get(n) and t.get(n)) else b[n] / t[n]
            rl = None if not (lo.get(n) and t.get(n)) else lo[n] / t[n]
            lines.append(f"{m:<24} {n:>7} {_fmt(t.get(n), '10.2f')} {_fmt(b.get(n), '11.2f')} "
                         f"{_fmt(lo.get(n), '10.2f')} {_fmt(rb, '10.2f')} {_fmt(rl, '9.2f')}")
        ok = lambda v, good: "-" if v is None else ("ok" if good(v) else "MISSED")  # noqa: E731
        r8 = None if not (b.get(TARGET_OBJECTS) and t.get(TARGET_OBJECTS)) else b[TARGET_OBJECTS] / t[TARGET_OBJECTS]
        cost_v, cost_t = extra_object_cost(b), extra_object_cost(t)
        worst = max(cost_v.values()) if cost_v else None
        verdicts.append(
            f"{m}: at {TARGET_OBJECTS} objects vosbench batched x{_fmt(r8, '.2f')} of PyTorch's frame time "
            f"({ok(r8, lambda v: v <= TARGET_RATIO)}, target <= {TARGET_RATIO}); cost per extra object "
            f"(largest over N) vosbench {_fmt(worst, '.2f')} x its 1-object frame "
            f"({ok(worst, lambda v: v <= TARGET_EXTRA_OBJECT)}, target <= {TARGET_EXTRA_OBJECT}), "
            f"PyTorch {_fmt(max(cost_t.values()) if cost_t else None, '.2f')}")
    out = "\n".join(lines)
    if verdicts:
        out += "\n\n" + "\n".join(verdicts)
    if errors:
        out += "\n\nfailed:\n" + "\n".join(errors)
    print(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--variant", required=True)
    r.add_argument("--weights", required=True, help="model.pt written by speed_torch.py weights")
    r.add_argument("--frames", required=True, help="folder of JPEG frames 00000.jpg, ...")
    r.add_argument("--prompts", required=True, help="folder of frame-0 masks 001.png ... (object ids)")
    r.add_argument("--precision", choices=["f32", "bf16"], default="bf16")
    r.add_argument("--tf32", choices=["on", "off"], default="on")
    r.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (for testing the script)")
    r.add_argument("--warmup-frames", type=int, default=5)
    r.add_argument("--json", required=True)
    t = sub.add_parser("table")
    t.add_argument("--sweep", nargs="*", default=[], help="objects_sweep.csv of vosbench")
    t.add_argument("--json", nargs="*", default=[], help="JSON records of the run command")
    f = sub.add_parser("fail")
    f.add_argument("--json", required=True)
    f.add_argument("--variant", required=True)
    f.add_argument("--objects", type=int, required=True)
    f.add_argument("--precision", required=True)
    f.add_argument("--log", required=True)
    a = ap.parse_args()
    {"run": lambda: run(a), "table": lambda: table(a), "fail": lambda: fail(a)}[a.cmd]()


if __name__ == "__main__":
    main()
