#!/usr/bin/env python3
"""Speed of the official PyTorch video predictors, measured like ``vosbench track --timing``.

Driven by tests/gpu/speed_vs_torch.sh (docs/performance.md, "Speed against PyTorch: how to run").
Subcommands:

``weights --variant V --out DIR [--seed 0]``
    Build the official model with seeded random weights, exactly as the parity fixture scripts do
    (SAM 2.1: ``make_sam2_fixtures.make_model``; EdgeTAM: ``make_edgetam_fixtures.build_model`` +
    ``redraw_weights``; both imported, not copied), apply the mask-bias tweak of the variant
    (``MASK_BIAS_SHIFT``, see below) and write ``DIR/model.pt`` (``{"model": state_dict}``, the
    original checkpoint format: ``vosbench convert DIR/model.pt --model V`` reads it) and
    ``DIR/weights.json`` (what was done). Runs on CPU, pure fp32.
``prompt --split DIR [--video synth_000]``
    Print ``X,Y``: a click on the largest object of frame 0 of a ``vosbench synth`` split (the
    annotation pixel nearest to the object's centroid).
``run --variant V --weights model.pt --frames DIR --point X,Y --precision f32|bf16 --json OUT``
    One timed run in this process (run each mode in its own process, so that the time from process
    start to the first mask includes imports, CUDA initialisation and the model build):
    ``build_sam2_video_predictor`` (SAM 2.1, the variant's own yaml, the checkpoint loaded
    strictly; EdgeTAM: the module tree of make_edgetam_video_fixture.build_predictor, timm without
    pretrained download) on ``--device`` (default cuda), then, as the official README does,
    ``init_state(frames)``, ``add_new_points_or_box(frame 0, one positive click)`` and
    ``propagate_in_video`` forward, all under ``torch.inference_mode()`` and, for bf16,
    ``torch.autocast(device, dtype=torch.bfloat16)``. f32 runs with TF32 allowed for matmuls and
    convolutions (``--tf32 on``, PyTorch's default for convolutions and what the official demo
    sets on Ampere+); ``--tf32 off`` for pure f32.
    Each yielded frame's mask is thresholded and copied to the host (``(logits > 0).cpu()``, as
    the official demo does) and the device synchronised before its timestamp.
``table JSON...``
    Print the comparison table of the JSON files (both engines; failed runs as error rows), with
    an extra FPS over the frames from ``FULL_BANK_FRAME`` on, then the ratios of every vosbench
    run to the PyTorch run of the same variant and precision.
``fail --json OUT --engine E --variant V --precision P [--tf32] --log LOG``
    Write an error record for a run that died (the table shows its last log line).

JSON fields shared with ``vosbench track --timing`` (src/cli/track.rs, ``Timing``): ``engine``,
``model``, ``precision``, ``tf32``, ``device``, ``device_name``, ``frames``, ``warmup_frames``,
``latencies_ms`` (one per tracked frame after the prompt frame: time from the previous frame's
mask on the host to this one's), ``fps``, ``fps_steady`` (without the first ``warmup_frames``
latencies), ``latency_p50_ms``/``p90``/``p99`` (numpy percentiles of the steady latencies),
``latency_mean_ms``, ``run_start_ms`` (process age when the script's code began),
``start_to_first_mask_ms`` (process age when the prompt frame's mask was on the host),
``model_load_ms``, ``first_mask_ms``, ``propagate_ms``, ``peak_device_alloc_bytes``
(``torch.cuda.max_memory_allocated``), ``peak_device_reserved_bytes``
(``torch.cuda.max_memory_reserved``), ``device_alloc_after_load_bytes``,
``device_total_used_end_bytes`` (``mem_get_info``: total - free, CUDA context included),
``mask_fraction`` ([min, mean, max] positive-pixel fraction). Extra here: ``import_ms``,
``init_state_ms``, ``hole_filling``.

Process age: ``/proc/uptime`` minus the ``starttime`` field (22) of ``/proc/self/stat`` divided by
``os.sysconf("SC_CLK_TCK")`` (100 on Linux; the Rust side assumes 100), 10 ms resolution.

Mask-bias tweak: random weights give masks that are empty or full, which would make the tracking
work unrepresentative (no-object frames skip work in both engines). SAM 2.1: the fixture rule
already sets the object-score bias to +2 (``make_sam2_fixtures.OBJ_SCORE_BIAS``); masks of the
full-size fixtures cover 18-58 % of the frame, no further change. EdgeTAM: every mask logit is
positive with the redrawn weights, so the last bias of each mask-decoder hypernetwork MLP is
lowered, as make_edgetam_video_fixture.py does (``MASK_BIAS_SHIFT``). ``mask_fraction`` in every
JSON shows whether the masks stayed neither empty nor full.

Hole filling (``fill_hole_area = 8``): SAM 2.1 1.1.0 needs the ``sam2._C`` CUDA extension (not
built in the reference sources): without it the official predictor warns and skips the step;
EdgeTAM falls back to OpenCV on the CPU. ``hole_filling`` records what happened (calls that ran /
were skipped). vosbench always fills holes, on the device.
"""

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REFERENCE = os.path.join(ROOT, "tests", "reference")

# Lowered from the last bias of every mask-decoder hypernetwork MLP (see the docstring).
MASK_BIAS_SHIFT = {"sam2.1_hiera_base_plus": 0.3, "edgetam": 0.2, "edgetam_test": 1.0}
# From this frame on the memory bank is full (7 memories, 16 object pointers: the memory-attention
# shapes stop changing); the table's "FPS f16+" column counts only those frames.
FULL_BANK_FRAME = 16
TEST_VARIANTS = {"sam2.1_test": "tests/models/sam2.1_test.json", "edgetam_test": "tests/models/edgetam_test.json"}


# ------------------------------------------------------------------------------------------------
# process age
# ------------------------------------------------------------------------------------------------


def parse_stat_starttime(stat):
    """Field 22 (starttime, clock ticks after boot) of a /proc/<pid>/stat line."""
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[22 - 3])


def process_age_ms():
    try:
        with open("/proc/self/stat") as f:
            start = parse_stat_starttime(f.read())
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return round(max(0.0, up - start / os.sysconf("SC_CLK_TCK")) * 1e3, 1)
    except (OSError, ValueError, IndexError):
        return None


RUN_START_MS = process_age_ms()


# ------------------------------------------------------------------------------------------------
# variants and model building (through the fixture scripts)
# ------------------------------------------------------------------------------------------------


def is_edgetam(variant):
    return variant.startswith("edgetam")


def variant_json(variant):
    rel = TEST_VARIANTS.get(variant, f"models/{variant}.json")
    path = os.path.join(ROOT, rel)
    if not os.path.exists(path):
        raise SystemExit(f"unknown variant {variant}: no {rel}")
    with open(path) as f:
        return json.load(f)


def _reference_modules():
    if REFERENCE not in sys.path:
        sys.path.insert(0, REFERENCE)


def _undo_fixture_settings(torch, threads):
    # the fixture modules pin 2 threads and TF32 off when imported or when building
    torch.set_num_threads(threads)


def make_weights(variant, out, seed, shift=None):
    import torch

    threads = torch.get_num_threads()
    _reference_modules()
    os.makedirs(out, exist_ok=True)
    info = {"variant": variant, "seed": seed}
    if is_edgetam(variant):
        import make_edgetam_fixtures as edf

        cfg = variant_json(variant)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = edf.build_model(cfg)
        sd = edf.redraw_weights(model, gen)
        info["rule"] = "make_edgetam_fixtures.redraw_weights (object-score bias |b| + 2)"
    else:
        import make_sam2_fixtures as base

        name = None if variant == "sam2.1_test" else variant
        _, model = base.make_model(name, seed)
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        info["rule"] = (f"make_sam2_fixtures.reinit_weights (object-score bias {base.OBJ_SCORE_BIAS}, "
                        f"Hiera residual scale {base.HIERA_RESIDUAL_SCALE})")
    _undo_fixture_settings(torch, threads)
    if shift is None:
        shift = MASK_BIAS_SHIFT.get(variant, 0.0)
    if shift:
        hyper = [k for k in sd if k.startswith("sam_mask_decoder.output_hypernetworks_mlps.") and k.endswith(".bias")]
        last = max(int(k.split(".")[-2]) for k in hyper)
        keys = sorted(k for k in hyper if int(k.split(".")[-2]) == last)
        for k in keys:
            sd[k] = (sd[k] - shift).contiguous()
        info["mask_bias_shift"] = {"shift": -shift, "keys": keys}
    sd = {k: v.contiguous() for k, v in sd.items()}
    torch.save({"model": sd}, os.path.join(out, "model.pt"))
    info["tensors"] = len(sd)
    info["params"] = int(sum(v.numel() for v in sd.values() if v.is_floating_point()))
    with open(os.path.join(out, "weights.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {out}/model.pt: {variant}, seed {seed}, {len(sd)} tensors, {info['params']} float values")


def build_predictor(torch, variant, ckpt, device, compiled=False):
    """The official video predictor with the checkpoint loaded strictly, on `device`."""
    threads = torch.get_num_threads()
    _reference_modules()
    cfg = variant_json(variant)
    if is_edgetam(variant):
        import make_edgetam_video_fixture as evf

        predictor = evf.build_predictor(cfg, ckpt)  # fill_hole_area 8, strict load, on CPU
        predictor = predictor.to(device)
    else:
        import make_sam2_fixtures as base
        from sam2.build_sam import build_sam2_video_predictor

        if variant in base.VARIANT_YAML:
            yaml, overrides = base.VARIANT_YAML[variant], []
        else:  # the small test variant: the JSON written over the tiny yaml
            yaml, overrides = base.BASE_YAML, base.overrides_from_json(cfg)
        # compiled: the official `vos_optimized` predictor (SAM2VideoPredictorVOS, torch.compile
        # of the image encoder, memory attention/encoder and heads in its default mode)
        predictor = build_sam2_video_predictor(yaml, ckpt_path=ckpt, device=device,
                                               hydra_overrides_extra=overrides,
                                               vos_optimized=compiled)
    _undo_fixture_settings(torch, threads)
    return predictor.eval()


# ------------------------------------------------------------------------------------------------
# the timed run
# ------------------------------------------------------------------------------------------------


def percentile(sorted_values, q):
    """numpy's default (linear) percentile of an already sorted list."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _r(v):
    return None if v is None else round(v, 3)


def summarize(rec):
    lat = rec["latencies_ms"]
    w = rec["warmup_frames"]
    for k in ("fps", "fps_steady", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms"):
        rec[k] = None
    if not lat:
        return rec
    rec["fps"] = round(len(lat) * 1e3 / sum(lat), 3)
    steady = lat[min(w, len(lat)):]
    if steady:
        rec["fps_steady"] = round(len(steady) * 1e3 / sum(steady), 3)
        rec["latency_mean_ms"] = round(sum(steady) / len(steady), 3)
        s = sorted(steady)
        for q in (50, 90, 99):
            rec[f"latency_p{q}_ms"] = round(percentile(s, q), 3)
    return rec


# --profile: the propagated frames (counted from the prompt frame) that torch.profiler records;
# from frame 16 on the memory bank is full, so every profiled frame has the same shapes
PROFILE_FRAMES = (16, 24)


def start_profiler(torch):
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    prof = profile(activities=acts)
    prof.__enter__()
    return prof


def write_profile(prof, path, frames):
    """Stop the profiler and write its per-operator and per-kernel tables (device time first)."""
    prof.__exit__(None, None, None)
    ka = prof.key_averages()
    with open(path, "w") as f:
        f.write(f"torch.profiler over {frames} propagated frames {PROFILE_FRAMES}; "
                "latencies of these frames include the profiler's overhead\n")
        for key in ("cuda_time_total", "cpu_time_total"):
            try:
                f.write(ka.table(sort_by=key, row_limit=45, max_name_column_width=70) + "\n")
            except Exception as e:  # the CPU-only case has no cuda_time_total column
                f.write(f"(no table sorted by {key}: {e})\n")
    # device kernels alone (no operator rows), for tests/gpu/kernel_table.py
    kernels = []
    for e in ka:
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            us = getattr(e, "device_time_total", None)
            if us is None:
                us = getattr(e, "cuda_time_total", 0.0)
            kernels.append({"name": e.key, "count": e.count, "device_us": float(us)})
    with open(path + ".kernels.json", "w") as f:
        json.dump({"frames": frames, "kernels": kernels}, f, indent=1)


def run(a):
    import contextlib

    import torch  # noqa: F401  (import time counts: it is part of a real start)

    import_ms = process_age_ms()
    variant = a.variant
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    # bf16 too: autocast leaves some ops in f32, and the official demo allows TF32 for them
    tf32 = a.tf32 == "on"

    # hole filling: count what ran and what the official code skipped
    import sam2.utils.misc as misc

    holes = {"ran": 0, "failed": 0, "error": None}
    orig_cc = misc.get_connected_components

    def counting_cc(mask):
        try:
            out = orig_cc(mask)
        except Exception as e:
            holes["failed"] += 1
            holes["error"] = holes["error"] or f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            raise
        holes["ran"] += 1
        return out

    misc.get_connected_components = counting_cc
    import warnings

    warnings.filterwarnings("ignore", message="(?s).*Skipping the post-processing step")

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    t0 = time.perf_counter()
    if a.compiled and is_edgetam(variant):
        raise SystemExit("--compiled: the official vos_optimized predictor is SAM 2.1 only")
    compile_mode = None
    if a.compiled and a.compile_mode == "default":
        # The official predictor asks torch.compile for mode="max-autotune", whose kernel search
        # did not finish within a device call (150 s for tiny); this drops the mode argument so
        # every component compiles in torch's default mode. Everything else stays official.
        orig_compile = torch.compile

        def compile_default(*args, **kwargs):
            kwargs.pop("mode", None)
            return orig_compile(*args, **kwargs)

        torch.compile = compile_default
    if a.compiled:
        compile_mode = a.compile_mode
    predictor = build_predictor(torch, variant, a.weights, dev, compiled=a.compiled)
    # after the build: importing the fixture modules turns TF32 off
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    sync()
    model_load_ms = (time.perf_counter() - t0) * 1e3
    alloc_after_load = torch.cuda.memory_allocated(dev) if cuda else None

    x, y = (float(v) for v in a.point.split(","))
    if a.precision == "bf16":
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16)
    elif a.precision == "f32":
        autocast = contextlib.nullcontext()
    else:
        raise SystemExit(f"--precision {a.precision}: expected f32 or bf16")

    import numpy as np

    lat, fractions = [], []
    with torch.inference_mode(), autocast:
        t0 = time.perf_counter()
        state = predictor.init_state(a.frames, offload_video_to_cpu=a.offload_video)
        sync()
        init_state_ms = (time.perf_counter() - t0) * 1e3
        n = state["num_frames"]
        vh, vw = state["video_height"], state["video_width"]
        t0 = time.perf_counter()
        _, _, masks = predictor.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=np.array([[x, y]], dtype=np.float32),
            labels=np.array([1], dtype=np.int32))
        m = (masks[0] > 0.0).cpu()
        sync()
        first_mask_ms = (time.perf_counter() - t0) * 1e3
        start_to_first = process_age_ms()
        del m
        seen = set()
        last = None
        t_prop = time.perf_counter()
        kw = {} if a.max_frames is None else {"max_frame_num_to_track": a.max_frames}
        prof = None
        for count, (fidx, _obj_ids, logits) in enumerate(predictor.propagate_in_video(state, **kw)):
            m = (logits[0] > 0.0).cpu()
            sync()
            now = time.perf_counter()
            if a.profile and count == PROFILE_FRAMES[0]:
                prof = start_profiler(torch)
            elif prof is not None and count == PROFILE_FRAMES[1]:
                write_profile(prof, a.profile, PROFILE_FRAMES[1] - PROFILE_FRAMES[0])
                prof = None
            if last is not None:
                lat.append(round((now - last) * 1e3, 3))
            if fidx not in seen:
                seen.add(fidx)
                fractions.append(float(m.float().mean()))
            last = time.perf_counter()
        propagate_ms = (time.perf_counter() - t_prop) * 1e3

    rec = {
        "engine": "pytorch",
        "model": variant,
        "precision": a.precision,
        "tf32": tf32,
        "compiled": bool(a.compiled),
        "compile_mode": compile_mode,
        "device": a.device,
        "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch_version": torch.__version__,
        "video": os.path.basename(os.path.normpath(a.frames)),
        "video_width": vw,
        "video_height": vh,
        "prompt_frame": 0,
        "frames": len(seen),
        "video_frames": n,
        "warmup_frames": a.warmup_frames,
        "latencies_ms": lat,
        "run_start_ms": _r(RUN_START_MS),
        "import_ms": _r(import_ms),
        "start_to_first_mask_ms": _r(start_to_first),
        "model_load_ms": round(model_load_ms, 3),
        "init_state_ms": round(init_state_ms, 3),
        "first_mask_ms": round(first_mask_ms, 3),
        "propagate_ms": round(propagate_ms, 3),
        "device_memory_accounting": "torch_caching_allocator" if cuda else None,
        "peak_device_alloc_bytes": torch.cuda.max_memory_allocated(dev) if cuda else None,
        "peak_device_reserved_bytes": torch.cuda.max_memory_reserved(dev) if cuda else None,
        "device_alloc_after_load_bytes": alloc_after_load,
        "device_total_used_end_bytes": None,
        "clock_ticks_per_second": os.sysconf("SC_CLK_TCK"),
        "offload_video_to_cpu": a.offload_video,
        "hole_filling": holes,
        "mask_fraction": [round(min(fractions), 4), round(sum(fractions) / len(fractions), 4),
                          round(max(fractions), 4)] if fractions else None,
    }
    if cuda:
        free, total = torch.cuda.mem_get_info(dev)
        rec["device_total_used_end_bytes"] = total - free
    summarize(rec)
    with open(a.json, "w") as f:
        json.dump(rec, f, indent=1)
    print(f"{variant} pytorch {a.precision}{' tf32' if tf32 else ''}: {rec['frames']} frames, "
          f"steady {rec['fps_steady']} fps, p50 {rec['latency_p50_ms']} ms, first mask at "
          f"{(start_to_first or 0) / 1e3:.2f} s, masks {rec['mask_fraction']}, hole filling {holes}")


# ------------------------------------------------------------------------------------------------
# prompt, failure records, table
# ------------------------------------------------------------------------------------------------


def prompt(a):
    import numpy as np
    from PIL import Image

    ann = os.path.join(a.split, "Annotations_6fps", a.video)
    best = None
    for obj in sorted(os.listdir(ann)):
        p = os.path.join(ann, obj, "00000.png")
        if not os.path.exists(p):
            continue
        m = np.asarray(Image.open(p).convert("L")) > 0
        area = int(m.sum())
        if area and (best is None or area > best[0]):
            best = (area, m)
    if best is None:
        raise SystemExit(f"{ann}: no object on frame 0")
    ys, xs = np.nonzero(best[1])
    cy, cx = ys.mean(), xs.mean()
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    print(f"{int(xs[i])},{int(ys[i])}")


def fail(a):
    line = ""
    try:
        with open(a.log, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        line = lines[-1] if lines else ""
    except OSError as e:
        line = f"no log ({e})"
    rec = {"engine": a.engine, "model": a.variant, "precision": a.precision, "tf32": a.tf32,
           "error": line[:300] or "failed without output"}
    with open(a.json, "w") as f:
        json.dump(rec, f, indent=1)


def fps_from_frame(r, frame):
    """FPS over the frames from `frame` on (forward runs from frame 0: latency i is frame i + 1)."""
    lat = (r.get("latencies_ms") or [])[frame - 1:]
    if r.get("prompt_frame", 0) != 0 or not lat:
        return None
    return len(lat) * 1e3 / sum(lat)


def _mode(r):
    p = r.get("precision", "?")
    c = " compiled" if r.get("compiled") else ""
    if r.get("engine") == "pytorch" and p == "bf16":
        return "bf16 autocast" + c
    return p + (" +tf32" if r.get("tf32") and p == "f32" else "") + c


def _fmt(v, spec):
    """format(v, spec), or '-' right-aligned to the spec's width."""
    if v is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width)) if width.isdigit() else "-"
    return format(v, spec)


def table(a):
    recs = []
    for p in a.json:
        try:
            with open(p) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            r = {"engine": "?", "model": os.path.basename(p), "precision": "?", "error": f"unreadable: {e}"}
        r["_file"] = p
        recs.append(r)
    order = {"pytorch": 0, "vosbench": 1}
    recs.sort(key=lambda r: (r.get("model", ""), order.get(r.get("engine"), 2), r.get("precision", ""),
                             bool(r.get("tf32"))))
    hdr = (f"{'variant':<24} {'engine':<9} {'precision':<14} {'steady FPS':>10} {'FPS f16+':>8} {'p50 ms':>8} "
           f"{'p99 ms':>8} {'peak MiB':>9} {'alloc MiB':>9} {'1st mask s':>10} {'mask %':>6}  device")
    lines = [hdr, "-" * len(hdr)]
    mib = lambda b: None if b is None else b / 1048576.0  # noqa: E731
    for r in recs:
        if r.get("error"):
            lines.append(f"{r.get('model', '?'):<24} {r.get('engine', '?'):<9} {_mode(r):<14} "
                         f"FAILED: {r['error']}")
            continue
        s = r.get("start_to_first_mask_ms")
        frac = r.get("mask_fraction")
        lines.append(
            f"{r['model']:<24} {r['engine']:<9} {_mode(r):<14} {_fmt(r.get('fps_steady'), '10.2f')} "
            f"{_fmt(fps_from_frame(r, FULL_BANK_FRAME), '8.2f')} {_fmt(r.get('latency_p50_ms'), '8.1f')} {_fmt(r.get('latency_p99_ms'), '8.1f')} "
            f"{_fmt(mib(r.get('peak_device_reserved_bytes')), '9.0f')} "
            f"{_fmt(mib(r.get('peak_device_alloc_bytes')), '9.0f')} "
            f"{_fmt(None if s is None else s / 1e3, '10.2f')} "
            f"{_fmt(None if not frac else 100 * frac[1], '6.1f')}  {r.get('device_name', '')}")
    # against the PyTorch run of the same variant and precision (targets: docs/performance.md)
    ratio_lines = []
    torch_runs = {(r["model"], r.get("precision"), bool(r.get("compiled"))): r for r in recs
                  if r.get("engine") == "pytorch" and not r.get("error")}
    pairs = [(r, torch_runs.get((r["model"], r.get("precision"), compiled)))
             for compiled in (False, True)
             for r in recs if r.get("engine") == "vosbench" and not r.get("error")]
    for r, t in pairs:
        if t is None:
            continue

        def ratio(key):
            v, w = r.get(key), t.get(key)
            if v is None or w in (None, 0):
                return None
            return v / w

        fps = ratio("fps_steady")
        v16, t16 = fps_from_frame(r, FULL_BANK_FRAME), fps_from_frame(t, FULL_BANK_FRAME)
        fps16 = None if v16 is None or not t16 else v16 / t16
        mem = ratio("peak_device_reserved_bytes")
        start = ratio("start_to_first_mask_ms")
        ok = lambda v, good: "-" if v is None else ("ok" if good(v) else "MISSED")  # noqa: E731
        ratio_lines.append(
            f"{r['model']:<24} vosbench {_mode(r):<9} vs pytorch {_mode(t):<22}: "
            f"FPS x{_fmt(fps, '.2f')} ({ok(fps, lambda v: v >= 1.0)}, target >= 1; "
            f"frames {FULL_BANK_FRAME}+ x{_fmt(fps16, '.2f')}), "
            f"peak memory x{_fmt(mem, '.2f')} ({ok(mem, lambda v: v <= 0.7)}, target <= 0.7), "
            f"start to first mask x{_fmt(start, '.2f')} ({ok(start, lambda v: v <= 0.3)}, target <= 0.3)")
    out = "\n".join(lines)
    if ratio_lines:
        out += "\n\n" + "\n".join(ratio_lines)
    print(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("weights")
    w.add_argument("--variant", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--mask-bias-shift", type=float, default=None,
                   help="lower the hypernetwork output biases by this much (default: MASK_BIAS_SHIFT of the variant)")
    p = sub.add_parser("prompt")
    p.add_argument("--split", required=True)
    p.add_argument("--video", default="synth_000")
    r = sub.add_parser("run")
    r.add_argument("--variant", required=True)
    r.add_argument("--weights", required=True, help="model.pt written by the weights command")
    r.add_argument("--frames", required=True, help="folder of JPEG frames 00000.jpg, ...")
    r.add_argument("--point", required=True, help="X,Y of a positive click on frame 0, video pixels")
    r.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    r.add_argument("--tf32", choices=["on", "off"], default="on")
    r.add_argument("--compiled", action="store_true",
                   help="the official vos_optimized predictor (torch.compile, default mode; SAM 2.1 "
                        "only); its compile time falls in the first mask")
    r.add_argument("--compile-mode", choices=["default", "max-autotune"], default="default",
                   help="torch.compile mode of --compiled: torch's default (the official code asks "
                        "for max-autotune, whose search did not finish within a device call)")
    r.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (for testing the script)")
    r.add_argument("--warmup-frames", type=int, default=5)
    r.add_argument("--max-frames", type=int, default=None,
                   help="track only this many frames after the prompt frame (testing)")
    r.add_argument("--offload-video", action="store_true",
                   help="init_state(offload_video_to_cpu=True) (default: the official default, frames on the device)")
    r.add_argument("--json", required=True)
    r.add_argument("--profile", default=None,
                   help=f"write torch.profiler tables of propagated frames {PROFILE_FRAMES} to this file "
                        "(those frames' latencies then include the profiler's overhead)")
    t = sub.add_parser("table")
    t.add_argument("json", nargs="+")
    f = sub.add_parser("fail")
    f.add_argument("--json", required=True)
    f.add_argument("--engine", required=True)
    f.add_argument("--variant", required=True)
    f.add_argument("--precision", required=True)
    f.add_argument("--tf32", action="store_true")
    f.add_argument("--log", required=True)
    a = ap.parse_args()
    {"weights": lambda: make_weights(a.variant, a.out, a.seed, a.mask_bias_shift), "prompt": lambda: prompt(a),
     "run": lambda: run(a), "table": lambda: table(a), "fail": lambda: fail(a)}[a.cmd]()


if __name__ == "__main__":
    main()
