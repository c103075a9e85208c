#!/usr/bin/env python3
"""Multi-object / mask-prompt tracking fixtures (issue #16) from the OFFICIAL video predictors.

One script for both families; the two official packages are both named ``sam2``, so each run of
the script serves one family, picked by ``--family`` and by PYTHONPATH:

    PYTHONPATH=.pyref/sam2:.pyref/common SAM2_BUILD_CUDA=0 python3 \\
        tests/reference/make_multi_object_fixture.py --family sam2 --sam2-src DIR
    PYTHONPATH=.pyref/edgetam:.pyref/common python3 \\
        tests/reference/make_multi_object_fixture.py --family edgetam --sam2-src DIR

(``.pyref`` from ``shared/tools/torch-ref-sources``; DIR holds ``tools/vos_inference.py`` and
``sav_dataset/`` of facebookresearch/sam2, which the pip package lacks; see FIXTURES.md.)

Scene (``--scene``, default tests/fixtures/multi_object; written when it has no prompts.json or
with ``--rewrite-scene``): a tiny SA-V style split, one video ``VIDEO`` of NUM_FRAMES JPEG frames
(WIDTH x HEIGHT, quality 90) = the frames of make_sam2_fixtures.render_frame (scene seed 0) with a
fourth object composited on top from frame LATE_FRAME on. Ground truth, per-object PNGs (0/255
grey) for every frame: object 1 = the striped ellipse, 2 = the checkered rectangle (both visible
from frame 0; visible part only, objects drawn later occlude earlier ones), 3 = the spotted
ellipse that appears at frame LATE_FRAME (empty PNGs before). The green star is not annotated.
Also ``pillow_rgb.safetensors`` (the frames as Pillow decodes them) and ``prompts.json`` (the
prompts of every run, in the ``vosbench track --prompts`` format).

Model: the family's test variant and weights (SAM 2.1: tests/models/sam2.1_test.json +
tests/fixtures/sam2_test/model.pt; EdgeTAM: tests/models/edgetam_test.json +
tests/fixtures/edgetam_test/model.pt with the mask-bias shift of make_edgetam_video_fixture,
written as ``weight_overrides.safetensors`` next to the outputs), built as the existing video
fixtures build them (build_sam2_video_predictor defaults: fill_hole_area 8, binarized masks from
prompts, dynamic multimask). Pure fp32 on CPU, TF32 off. Hole filling RUNS: connected components
come from make_sam2_video_fixture.cpu_connected_components (scipy, 8-connectivity, exact) in both
families, the "Skipping the post-processing step" warning is an error, and every call of
``fill_holes_in_mask_scores`` is counted with the low-res pixels it changed.

Runs (names, tensors and the prompt schema in tests/reference/FIXTURES.md):
    masks     the semi-supervised VOS protocol of sam2's tools/vos_inference.py with
              --per_obj_png_file --track_object_appearing_later_in_video
              (vos_separate_inference_per_object): each object, in ascending id order, in the
              same inference state after reset_state, prompted by add_new_mask with its first
              non-empty ground-truth mask, tracked forward from that frame; per-object PNGs of
              (logits > 0) for every frame, empty where the object has no output. With
              --sam2-src the official function itself is also run and its PNGs must equal ours.
    together  the objects visible on frame 0, mask-prompted on frame 0 in ONE state, propagated
              together; must equal ``masks`` for those objects (bit-exact for SAM 2.1's
              per-object predictor; EdgeTAM's legacy predictor batches the objects, so within
              TOGETHER_TOL). Nothing per frame is stored for it.
    late_join SAM 2.1 only: ``together``, stopped before LATE_FRAME, then object 3 added by its
              mask on LATE_FRAME and tracking resumed from there in the same state; must equal
              ``masks`` bit-exactly. (EdgeTAM's legacy predictor refuses new objects once
              tracking has started.)
    mixed     one state: object 1 by its mask on frame 0 then a negative correction click on
              frame 0 (the click's call sees the mask's low-res logits as its mask prompt and
              replaces that frame's output), object 2 by one positive click on frame 0;
              propagated together.
    masks_nopp, mixed_nopp
              the same predictor as built with apply_postprocessing=False, what
              tools/vos_inference.py runs by default (no hole filling, sigmoid instead of
              binarized prompt masks in the memory encoder, no dynamic multimask): ``masks``
              as it is; ``mixed`` with object 2 prompted by its box instead of the click (two
              prompt points, so the decoder's single-mask output is where dynamic multimask
              would act). Run after the others, so they are untouched.

Outputs (``--out``; default tests/fixtures/multi_object or tests/fixtures/edgetam_multi_object):
``tracking.safetensors``, ``pred/`` (masks run, SA-V per-object layout), ``jf_official.json``
and ``official_results{,_noskip}.csv`` (the official SA-V evaluator on pred/ against the scene's
ground truth, with and without skipping the first and last annotated frames).

Full size (not committed; for the GPU machine, no network, CPU reference):
    --family sam2 --variant sam2.1_hiera_tiny --model FX/model.pt --scene S --out O
    --family edgetam --variant models/edgetam.json --model FX/model.pt --scene S --out O
(FX made by make_sam2_fixtures.py / make_edgetam_fixtures.py with the same variant).
``--skip-official-tools`` drops the two steps that need --sam2-src (the cross-check against the
official vos_inference function and the J&F).
"""

import argparse
import importlib.util
import inspect
import json
import os
import shutil
import sys
import tempfile
import textwrap
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_sam2_fixtures as base  # noqa: E402  (shared helpers; imports no sam2 package)

VIDEO = "multi3"
NUM_FRAMES = 16
WIDTH, HEIGHT = 64, 48
SCENE_SEED = 0
LATE_FRAME = 6
# annotated object id -> index into the draw order (render_frame's three objects, then LATE_OBJECT)
OBJECTS = {1: 0, 2: 1, 3: 3}
LATE_OBJECT = dict(kind="ellipse", c0=(0.86, 0.30), vel=(-0.012, 0.006), amp=(0.02, 0.03),
                   size=(0.15, 0.10), rot0=0.8, omega=0.1)
# The late object is a ring: a round hole of this radius (in frame heights) at its centre, small
# enough that its mask prompt gives a low-res hole of <= 8 pixels, which hole filling closes.
LATE_HOLE = 0.023
TOGETHER_TOL = 1e-4  # EdgeTAM only: batched objects vs one object per state (max abs, logits)
# EdgeTAM's mask-bias shift for full-size weights (make_edgetam_fixtures.py --variant
# models/edgetam.json, seed 0): probed on this scene, 0 gives full masks on tracking frames, 0.3
# empty ones, 0.2 masks of 15-30 %. The test weights use make_edgetam_video_fixture's shift.
FULL_SIZE_MASK_BIAS_SHIFT = 0.2

ANN = "Annotations_6fps"
JPG = "JPEGImages_24fps"


# --------------------------------------------------------------------------------------------
# The synthetic scene
# --------------------------------------------------------------------------------------------


def _grid():
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    return (xx + 0.5) / WIDTH, (yy + 0.5) / HEIGHT


def _late_coverage(t, u, v):
    """Soft coverage of the ring and its object-local coordinates."""
    cov, lx, ly = base._obj_coverage(LATE_OBJECT, t, u, v, WIDTH / HEIGHT, 1.5 / HEIGHT)
    hole = dict(LATE_OBJECT, size=(LATE_HOLE, LATE_HOLE))
    return cov * (1 - base._obj_coverage(hole, t, u, v, WIDTH / HEIGHT, 1.5 / HEIGHT)[0]), lx, ly


def scene_frame(t):
    """uint8 [H, W, 3]: render_frame plus the late ring, spotted magenta on white."""
    img = base.render_frame(t, WIDTH, HEIGHT, seed=SCENE_SEED).astype(np.float64)
    if t < LATE_FRAME:
        return img.astype(np.uint8)
    cov, lx, ly = _late_coverage(t, *_grid())
    spots = (np.sin(5.0 * lx) * np.sin(5.0 * ly) > 0)[..., None]
    col = np.where(spots, np.array([230.0, 40.0, 200.0]), np.array([250.0, 250.0, 250.0]))
    img = img * (1 - cov[..., None]) + col * cov[..., None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def scene_masks(t):
    """{object id: bool [H, W]}: coverage > 0.5, minus what objects drawn later cover."""
    u, v = _grid()
    _, objs = base._scene(SCENE_SEED)
    drawn = [base._obj_coverage(o, t, u, v, WIDTH / HEIGHT, 1.5 / HEIGHT)[0] > 0.5 for o in objs]
    if t >= LATE_FRAME:
        drawn.append(_late_coverage(t, u, v)[0] > 0.5)
    masks = {}
    for oid, k in OBJECTS.items():
        if k >= len(drawn):
            masks[oid] = np.zeros((HEIGHT, WIDTH), bool)
            continue
        above = np.zeros((HEIGHT, WIDTH), bool)
        for m in drawn[k + 1:]:
            above |= m
        masks[oid] = drawn[k] & ~above
    return masks


def _quarter(x):
    """Round a pixel coordinate to 1/4 so that JSON, float32 and f64 all hold it exactly."""
    return round(float(x) * 4) / 4


def scene_prompts(gt):
    """prompts.json: the runs' prompts; paths relative to the scene folder."""
    first = {oid: min(t for t in range(NUM_FRAMES) if gt[t][oid].any()) for oid in OBJECTS}
    assert first == {1: 0, 2: 0, 3: LATE_FRAME}, first

    def mask_step(oid, t):
        return {"frame": t, "mask": f"{ANN}/{VIDEO}/{oid:03d}/{t:05d}.png"}

    # object 2: a positive click at its centre; object 1: a negative click 3 px right of its box
    cx2, cy2 = (_quarter(c) for c in base.object_center_px(0, OBJECTS[2], WIDTH, HEIGHT, seed=SCENE_SEED))
    x0, y0, x1, y1 = base.object_box_px(0, OBJECTS[1], WIDTH, HEIGHT, seed=SCENE_SEED)
    nx, ny = _quarter(x1 + 3), _quarter((y0 + y1) / 2)
    assert 0 <= nx < WIDTH and 0 <= ny < HEIGHT
    assert gt[0][2][int(cy2), int(cx2)], "object 2's click is not on object 2"
    assert not any(m[int(ny), int(nx)] for m in gt[0].values()), "negative click lands on an object"
    every = [{"id": oid, "prompts": [mask_step(oid, first[oid])]} for oid in sorted(OBJECTS)]
    bx = [_quarter(c) for c in base.object_box_px(0, OBJECTS[2], WIDTH, HEIGHT, seed=SCENE_SEED)]
    assert gt[0][2][int(cy2), int(cx2)] and bx[0] < cx2 < bx[2] and bx[1] < cy2 < bx[3]
    return {
        "format": "vosbench-prompts-1",
        "video": VIDEO,
        "frames": f"{JPG}/{VIDEO}",
        "width": WIDTH,
        "height": HEIGHT,
        "num_frames": NUM_FRAMES,
        "runs": {
            "masks": {"sessions": "per_object", "families": ["sam2", "edgetam"], "objects": every},
            "together": {"sessions": "shared", "families": ["sam2", "edgetam"],
                         "objects": [o for o in every if first[o["id"]] == 0]},
            "late_join": {"sessions": "shared", "families": ["sam2"], "objects": every},
            "mixed": {"sessions": "shared", "families": ["sam2", "edgetam"], "objects": [
                {"id": 1, "prompts": [mask_step(1, 0), {"frame": 0, "points": [[nx, ny]], "labels": [0]}]},
                {"id": 2, "prompts": [{"frame": 0, "points": [[cx2, cy2]], "labels": [1]}]},
            ]},
            "masks_nopp": {"sessions": "per_object", "families": ["sam2", "edgetam"],
                           "postprocessing": "off", "objects": every},
            "mixed_nopp": {"sessions": "shared", "families": ["sam2", "edgetam"],
                           "postprocessing": "off", "objects": [
                {"id": 1, "prompts": [mask_step(1, 0), {"frame": 0, "points": [[nx, ny]], "labels": [0]}]},
                {"id": 2, "prompts": [{"frame": 0, "box": bx}]},
            ]},
        },
    }


def write_scene(root):
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    frames = [scene_frame(t) for t in range(NUM_FRAMES)]
    gt = [scene_masks(t) for t in range(NUM_FRAMES)]
    for sub in (JPG, ANN):
        shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
    os.makedirs(os.path.join(root, JPG, VIDEO))
    for t, img in enumerate(frames):
        Image.fromarray(img).save(os.path.join(root, JPG, VIDEO, f"{t:05d}.jpg"), quality=90)
        for oid, m in gt[t].items():
            d = os.path.join(root, ANN, VIDEO, f"{oid:03d}")
            os.makedirs(d, exist_ok=True)
            Image.fromarray(m.astype(np.uint8) * 255, "L").save(os.path.join(d, f"{t:05d}.png"))
    rgb = np.stack([np.asarray(Image.open(os.path.join(root, JPG, VIDEO, f"{t:05d}.jpg")).convert("RGB"))
                    for t in range(NUM_FRAMES)])
    save_file({"rgb": torch.from_numpy(np.ascontiguousarray(rgb))}, os.path.join(root, "pillow_rgb.safetensors"))
    with open(os.path.join(root, "prompts.json"), "w") as f:
        json.dump(scene_prompts(gt), f, indent=1)
        f.write("\n")
    areas = [[int(gt[t][oid].sum()) for t in range(NUM_FRAMES)] for oid in sorted(OBJECTS)]
    print(f"scene: {NUM_FRAMES} frames {WIDTH}x{HEIGHT} in {root}; ground-truth areas per object: {areas}")


def read_mask_png(path):
    from PIL import Image

    return np.array(Image.open(path)).astype(np.uint8) > 0  # as vos_inference.load_ann_png + `> 0`


# --------------------------------------------------------------------------------------------
# The official predictor, patched only to run hole filling on CPU and to count it
# --------------------------------------------------------------------------------------------


class HoleFill:
    """Counts the calls of fill_holes_in_mask_scores and the low-res pixels they changed."""

    def __init__(self, svp):
        self.calls = self.changed = 0
        self.inner = svp.fill_holes_in_mask_scores
        svp.fill_holes_in_mask_scores = self

    def __call__(self, mask, max_area):
        out = self.inner(mask, max_area)
        self.calls += 1
        self.changed += int((out != mask).sum())
        return out

    def take(self):
        got = {"calls": self.calls, "changed": self.changed}
        self.calls = self.changed = 0
        return got


def allow_batched_perceiver():
    """EdgeTAM's PerceiverResampler.forward_2d calls `.view` on an expanded tensor, which fails
    for more than one object (facebookresearch/EdgeTAM#15). Recompile that method with `.reshape`
    in that one place (same values) so that several objects can share one state."""
    from sam2.modeling import perceiver

    cls = perceiver.PerceiverResampler
    src = textwrap.dedent(inspect.getsource(cls.forward_2d))
    old, new = ".expand(B, -1, -1).view(-1, 1, C)", ".expand(B, -1, -1).reshape(-1, 1, C)"
    if src.count(old) != 1:
        raise SystemExit("EdgeTAM perceiver: the expected `.view` is not in forward_2d; check the package")
    scope = {}
    exec(compile(src.replace(old, new), perceiver.__file__, "exec"), vars(perceiver), scope)
    cls.forward_2d = scope["forward_2d"]


def check_family(family):
    import sam2

    is_edgetam = importlib.util.find_spec("sam2.modeling.perceiver") is not None
    if is_edgetam != (family == "edgetam"):
        raise SystemExit(f"--family {family}: PYTHONPATH gives the wrong `sam2` package ({sam2.__file__})")


def build_predictor(a):
    """(predictor, its hole-filling counter, weight overrides or None), patches installed."""
    import sam2.sam2_video_predictor as svp
    import sam2.utils.misc as misc
    from make_sam2_video_fixture import cpu_connected_components

    misc.get_connected_components = cpu_connected_components
    warnings.filterwarnings("error", message=".*Skipping the post-processing step.*")
    overrides = None
    if a.family == "sam2":
        base.setup_torch()
        predictor = base.build_from_json(base.load_json(a.variant), ckpt_path=a.model)
    else:
        import make_edgetam_video_fixture as evf  # imports make_edgetam_fixtures (torch set-up)

        allow_batched_perceiver()
        with open(a.variant) as f:
            predictor = evf.build_predictor(json.load(f), a.model)
        shift = evf.MASK_BIAS_SHIFT if a.mask_bias_shift is None else a.mask_bias_shift
        overrides = evf.apply_mask_bias_overrides(predictor, shift)
        assert predictor.binarize_mask_from_pts_for_mem_enc
    assert isinstance(predictor, svp.SAM2VideoPredictor)
    assert predictor.fill_hole_area == 8 and not predictor.non_overlap_masks
    return predictor, HoleFill(svp), overrides


def set_postprocessing(predictor, on):
    """The predictor as build_sam2_video_predictor(apply_postprocessing=on) builds it: the
    builder's only differences are these three settings (same weights, same modules; the
    stability delta and threshold it sets are the decoder's defaults)."""
    predictor.fill_hole_area = 8 if on else 0
    predictor.binarize_mask_from_pts_for_mem_enc = on
    predictor.sam_mask_decoder.dynamic_multimask_via_stability = on


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def propagate(predictor, state, **kw):
    """[(frame, obj ids, video-res logits [N,1,H,W])] of one propagate_in_video call."""
    return [(f, list(ids), vm.clone()) for f, ids, vm in predictor.propagate_in_video(state, **kw)]


def harvest(state, yields):
    """{obj id: {frame: tensors}} from the state's per-object outputs and the yielded logits."""
    got = {}
    for obj_idx, obj_id in state["obj_idx_to_id"].items():
        out = state["output_dict_per_obj"][obj_idx]
        per = got.setdefault(obj_id, {})
        for f, ids, vm in yields:
            if obj_id not in ids:
                continue
            cond = f in out["cond_frame_outputs"]
            o = out["cond_frame_outputs"][f] if cond else out["non_cond_frame_outputs"][f]
            per[f] = {"low_res": o["pred_masks"], "video_res": vm[ids.index(obj_id)][None],
                      "object_score": o["object_score_logits"], "obj_ptr": o["obj_ptr"],
                      "is_cond": np.float32(cond)}
    return got


def apply_prompts(predictor, state, scene, objects, frame=None):
    """Official calls for every prompt step (of the given frame only, if set), in file order.
    Returns the low-res output of each step before the next one (for the mixed-run checks)."""
    import torch

    steps = []
    for obj in objects:
        for p in obj["prompts"]:
            if frame is not None and p["frame"] != frame:
                continue
            if "mask" in p:
                predictor.add_new_mask(inference_state=state, frame_idx=p["frame"], obj_id=obj["id"],
                                       mask=read_mask_png(os.path.join(scene, p["mask"])))
            else:
                predictor.add_new_points_or_box(
                    inference_state=state, frame_idx=p["frame"], obj_id=obj["id"],
                    points=np.array(p["points"], np.float32) if "points" in p else None,
                    labels=np.array(p["labels"], np.int32) if "labels" in p else None,
                    box=np.array(p["box"], np.float32) if "box" in p else None)
            idx = state["obj_id_to_idx"][obj["id"]]
            temp = state["temp_output_dict_per_obj"][idx]["cond_frame_outputs"][p["frame"]]
            steps.append((obj["id"], p, torch.clone(temp["pred_masks"])))
    return steps


def run_masks(predictor, scene):
    """Our reading of vos_separate_inference_per_object (--per_obj_png_file, use_all_masks off):
    first non-empty mask per object, objects in ascending id order, one after reset_state each."""
    video_dir = os.path.join(scene, JPG, VIDEO)
    names = sorted((os.path.splitext(p)[0] for p in os.listdir(video_dir) if p.endswith(".jpg")), key=int)
    state = predictor.init_state(video_path=video_dir, async_loading_frames=False)
    first = {}
    for idx, name in enumerate(names):
        for obj_name in os.listdir(os.path.join(scene, ANN, VIDEO)):
            path = os.path.join(scene, ANN, VIDEO, obj_name, f"{name}.png")
            if os.path.exists(path) and int(obj_name) not in first:
                m = read_mask_png(path)
                if m.any():
                    first[int(obj_name)] = (idx, m)
    got, orders, mask_inputs = {}, {}, {}
    for obj_id in sorted(first):
        idx, m = first[obj_id]
        predictor.reset_state(state)
        predictor.add_new_mask(inference_state=state, frame_idx=idx, obj_id=obj_id, mask=m)
        mask_inputs[obj_id] = state["mask_inputs_per_obj"][0][idx].clone()
        yields = propagate(predictor, state, start_frame_idx=idx, reverse=False)
        got.update(harvest(state, yields))
        orders[obj_id] = [f for f, _, _ in yields]
    return got, orders, mask_inputs, {oid: f for oid, (f, _) in first.items()}


def run_shared(predictor, scene, objects, join_frame=None):
    """One state; with join_frame, objects whose first prompt is on join_frame are added when
    tracking reaches it (tracking stops before it and resumes from it)."""
    state = predictor.init_state(video_path=os.path.join(scene, JPG, VIDEO), async_loading_frames=False)
    steps = apply_prompts(predictor, state, scene, objects, frame=0)
    if join_frame is None:
        yields = propagate(predictor, state)
    else:
        yields = propagate(predictor, state, max_frame_num_to_track=join_frame - 1)
        assert yields[-1][0] == join_frame - 1
        steps += apply_prompts(predictor, state, scene, objects, frame=join_frame)
        yields += propagate(predictor, state, start_frame_idx=join_frame)
    if len(steps) != sum(len(o["prompts"]) for o in objects):
        raise SystemExit("a prompt is on a frame this run does not visit (only frame 0 and join_frame)")
    return harvest(state, yields), [f for f, _, _ in yields], steps


def max_diff(a, b, oids):
    """Largest |a - b| over every tensor of the given objects (frames and names must agree)."""
    worst = 0.0
    for oid in oids:
        assert sorted(a[oid]) == sorted(b[oid]), (oid, sorted(a[oid]), sorted(b[oid]))
        for f in a[oid]:
            for k, x in a[oid][f].items():
                d = np.asarray(x, np.float64) - np.asarray(b[oid][f][k], np.float64)
                worst = max(worst, float(np.abs(d).max()))
    return worst


def write_pred_pngs(got, out, height, width):
    """The masks run as vos_inference writes it with --per_obj_png_file: every frame of every
    object, logits > 0 (-1024 where the object has no output, i.e. empty); 0/255 grey here."""
    from PIL import Image

    root = os.path.join(out, "pred")
    shutil.rmtree(root, ignore_errors=True)
    for oid in sorted(got):
        d = os.path.join(root, VIDEO, f"{oid:03d}")
        os.makedirs(d)
        for t in range(NUM_FRAMES):
            m = (got[oid][t]["video_res"].reshape(height, width) > 0).numpy() if t in got[oid] \
                else np.zeros((height, width), bool)
            Image.fromarray(m.astype(np.uint8) * 255, "L").save(os.path.join(d, f"{t:05d}.png"))
    return root


def load_official_module(path, name):
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: --sam2-src must be a facebookresearch/sam2 checkout (see FIXTURES.md)")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_against_official_vos(predictor, scene, pred_root, sam2_src):
    """Run tools/vos_inference.py's own vos_separate_inference_per_object; its PNGs must be ours."""
    vos = load_official_module(os.path.join(sam2_src, "tools", "vos_inference.py"), "official_vos_inference")
    with tempfile.TemporaryDirectory() as tmp:
        vos.vos_separate_inference_per_object(
            predictor=predictor, base_video_dir=os.path.join(scene, JPG), input_mask_dir=os.path.join(scene, ANN),
            output_mask_dir=tmp, video_name=VIDEO, score_thresh=0.0, use_all_masks=False, per_obj_png_file=True)
        n = 0
        for obj in sorted(os.listdir(os.path.join(pred_root, VIDEO))):
            for fn in sorted(os.listdir(os.path.join(pred_root, VIDEO, obj))):
                theirs = read_mask_png(os.path.join(tmp, VIDEO, obj, fn))
                if not np.array_equal(theirs, read_mask_png(os.path.join(pred_root, VIDEO, obj, fn))):
                    raise SystemExit(f"official vos_separate_inference_per_object differs at {obj}/{fn}")
                n += 1
        if n != sum(len(fs) for _, _, fs in os.walk(os.path.join(tmp, VIDEO))):
            raise SystemExit("official vos_separate_inference_per_object wrote a different set of PNGs")
    print(f"official vos_separate_inference_per_object: its {n} PNGs equal ours")


def official_jf(scene, pred_root, out, sam2_src):
    """The official SA-V evaluator on pred/ vs the ground truth (make_eval_fixtures.run_official)."""
    sys.path.insert(0, os.path.join(sam2_src, "sav_dataset"))
    from utils.sav_benchmark import benchmark
    from make_eval_fixtures import run_official

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(scene, ANN), os.path.join(tmp, "gt"))
        shutil.copytree(pred_root, os.path.join(tmp, "pred"))
        res = {"skip": run_official(benchmark, tmp, True), "noskip": run_official(benchmark, tmp, False)}
        for mode in res.values():
            shutil.copy(os.path.join(tmp, mode["csv"]), os.path.join(out, mode["csv"]))
    for mode in res.values():
        for o in mode["objects"]:
            o["J&F"] = (o["J"] + o["F"]) / 2
    with open(os.path.join(out, "jf_official.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    return res


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=["sam2", "edgetam"])
    ap.add_argument("--variant", default=None,
                    help="sam2: models/<variant>.json name (default the test variant); "
                         "edgetam: path of a variant JSON (default tests/models/edgetam_test.json)")
    ap.add_argument("--model", default=None, help="weights (default: the family's committed test weights)")
    ap.add_argument("--scene", default=os.path.join(base.REPO, "tests/fixtures/multi_object"))
    ap.add_argument("--rewrite-scene", action="store_true", help="(re)write the scene even if it exists")
    ap.add_argument("--out", default=None, help="default tests/fixtures/multi_object or edgetam_multi_object")
    ap.add_argument("--sam2-src", default=os.environ.get("SAM2_SRC"),
                    help="facebookresearch/sam2 checkout (tools/vos_inference.py, sav_dataset/)")
    ap.add_argument("--skip-official-tools", action="store_true",
                    help="no cross-check with tools/vos_inference.py and no J&F (full-size runs)")
    ap.add_argument("--mask-bias-shift", type=float, default=None,
                    help="EdgeTAM: lower the mask hypernetworks' last biases by this (default: "
                         "the edgetam_video fixture's shift for the test weights, "
                         f"{FULL_SIZE_MASK_BIAS_SHIFT} otherwise)")
    a = ap.parse_args()
    committed = a.variant is None and a.model is None
    if not committed and (a.variant is None or a.model is None or a.out is None):
        raise SystemExit("full-size runs need --variant, --model and --out (they are not committed)")
    if a.mask_bias_shift is not None and a.family != "edgetam":
        raise SystemExit("--mask-bias-shift is for --family edgetam only")
    if not a.skip_official_tools and not a.sam2_src:
        raise SystemExit("need --sam2-src DIR (or SAM2_SRC), or --skip-official-tools")
    test_fixture = {"sam2": "sam2_test", "edgetam": "edgetam_test"}[a.family]
    a.model = a.model or os.path.join(base.REPO, "tests/fixtures", test_fixture, "model.pt")
    if a.family == "edgetam" and a.variant is None:
        a.variant = os.path.join(base.REPO, "tests/models/edgetam_test.json")
    if a.family == "edgetam" and a.mask_bias_shift is None and not committed:
        a.mask_bias_shift = FULL_SIZE_MASK_BIAS_SHIFT
    a.out = a.out or os.path.join(base.REPO, "tests/fixtures",
                                  {"sam2": "multi_object", "edgetam": "edgetam_multi_object"}[a.family])
    check_family(a.family)

    import torch
    from safetensors.torch import load_file, save_file

    if a.rewrite_scene or not os.path.exists(os.path.join(a.scene, "prompts.json")):
        write_scene(a.scene)
    with open(os.path.join(a.scene, "prompts.json")) as f:
        prompts = json.load(f)
    runs = prompts["runs"]
    os.makedirs(a.out, exist_ok=True)

    predictor, fills, overrides = build_predictor(a)
    if overrides is not None:
        if committed and a.mask_bias_shift is None:  # the edgetam_video fixture's, bit for bit
            ref = load_file(os.path.join(base.REPO, "tests/fixtures/edgetam_video/weight_overrides.safetensors"))
            assert ref.keys() == overrides.keys() and all(torch.equal(ref[k], overrides[k]) for k in ref)
        save_file(overrides, os.path.join(a.out, "weight_overrides.safetensors"))

    T, report = {}, {}

    def put(name, t):
        if name in T:
            raise SystemExit(f"duplicate fixture name {name}")
        T[name] = torch.as_tensor(t).detach().contiguous().clone()

    def put_run(run, got):
        for oid in sorted(got):
            frames = sorted(got[oid])
            put(f"{run}.obj.{oid}.frames", torch.tensor(frames, dtype=torch.float32))
            for f in frames:
                for k, x in got[oid][f].items():
                    put(f"{run}.obj.{oid}.frame.{f}.{k}", torch.as_tensor(x, dtype=torch.float32).reshape(
                        (1,) if k == "is_cond" else tuple(x.shape)))

    # ---- masks: the official VOS protocol, one object per session
    masks, orders, mask_inputs, first = run_masks(predictor, a.scene)
    report["masks"] = fills.take()
    want = {o["id"]: o["prompts"][0]["frame"] for o in runs["masks"]["objects"]}
    assert first == want, (first, want)
    put_run("masks", masks)
    for oid in sorted(masks):
        put(f"masks.obj.{oid}.order", torch.tensor(orders[oid], dtype=torch.float32))
        put(f"masks.obj.{oid}.prompt.mask_input", mask_inputs[oid].to(torch.uint8))
    H, W = masks[1][0]["video_res"].shape[-2:]
    pred_root = write_pred_pngs(masks, a.out, H, W)

    # ---- together: the frame-0 objects in one state; must equal masks
    together, order, _ = run_shared(predictor, a.scene, runs["together"]["objects"])
    report["together"] = fills.take()
    ids = [o["id"] for o in runs["together"]["objects"]]
    diff = max_diff(together, masks, ids)
    put("together.order", torch.tensor(order, dtype=torch.float32))
    put("together.max_abs_diff", torch.tensor([diff], dtype=torch.float32))
    print(f"together (objects {ids}) vs masks: max abs difference {diff:.3g}")
    if diff > (0.0 if a.family == "sam2" else TOGETHER_TOL):
        raise SystemExit("together differs from masks")

    # ---- late_join (SAM 2.1): object 3 joins the shared state at its first frame
    if a.family in runs["late_join"]["families"]:
        joined, order, _ = run_shared(predictor, a.scene, runs["late_join"]["objects"], join_frame=LATE_FRAME)
        report["late_join"] = fills.take()
        diff = max_diff(joined, masks, sorted(masks))
        put("late_join.order", torch.tensor(order, dtype=torch.float32))
        put("late_join.max_abs_diff", torch.tensor([diff], dtype=torch.float32))
        print(f"late_join (objects {sorted(joined)}) vs masks: max abs difference {diff:.3g}")
        if diff != 0.0:
            raise SystemExit("late_join differs from masks")

    # ---- mixed: mask + correction click, and a click, in one state
    mixed, order, steps = run_shared(predictor, a.scene, runs["mixed"]["objects"])
    report["mixed"] = fills.take()
    (o1, _, after_mask), (o1b, _, after_click), (o2, _, _) = steps
    assert (o1, o1b, o2) == (1, 1, 2)
    # the mask step is the masks run's cond output; the click replaced it on frame 0
    assert torch.equal(after_mask, masks[1][0]["low_res"]), "mask step differs from the masks run"
    assert torch.equal(after_click, mixed[1][0]["low_res"]) and not torch.equal(after_click, after_mask)
    put_run("mixed", mixed)
    put("mixed.order", torch.tensor(order, dtype=torch.float32))

    # ---- the same without post-processing (vos_inference.py's default), after everything else
    set_postprocessing(predictor, False)
    masks_nopp, orders_nopp, _, first_nopp = run_masks(predictor, a.scene)
    report["masks_nopp"] = fills.take()
    assert first_nopp == first
    put_run("masks_nopp", masks_nopp)
    for oid in sorted(masks_nopp):
        put(f"masks_nopp.obj.{oid}.order", torch.tensor(orders_nopp[oid], dtype=torch.float32))
    nopp_diff = max_diff(masks_nopp, masks, sorted(masks))
    print(f"masks_nopp vs masks: max abs difference {nopp_diff:.3g}")
    if nopp_diff == 0.0:
        raise SystemExit("post-processing off changed nothing in the masks run")
    mixed_nopp, order, steps = run_shared(predictor, a.scene, runs["mixed_nopp"]["objects"])
    report["mixed_nopp"] = fills.take()
    assert [s[0] for s in steps] == [1, 1, 2]
    put_run("mixed_nopp", mixed_nopp)
    put("mixed_nopp.order", torch.tensor(order, dtype=torch.float32))
    if report["masks_nopp"]["calls"] or report["mixed_nopp"]["calls"]:
        raise SystemExit("hole filling ran with post-processing off")
    set_postprocessing(predictor, True)

    for run, st in report.items():
        put(f"{run}.hole_fill.calls", torch.tensor([float(st["calls"])]))
        put(f"{run}.hole_fill.changed", torch.tensor([float(st["changed"])]))
    save_file(T, os.path.join(a.out, "tracking.safetensors"))

    # ---- official tools: the same PNGs from vos_inference itself, and the SA-V J&F
    jf = None
    if not a.skip_official_tools:
        fills.take()
        check_against_official_vos(predictor, a.scene, pred_root, a.sam2_src)
        fills.take()
        jf = official_jf(a.scene, pred_root, a.out, a.sam2_src)

    summarize(a, T, report, {"masks": masks, "mixed": mixed, "masks_nopp": masks_nopp,
                              "mixed_nopp": mixed_nopp}, jf, strict=committed)


def summarize(a, T, report, runs, jf, strict):
    """Print what a reviewer needs. A committed fixture that would prove little (hole filling
    never changed a pixel, an object mostly absent, an empty or full mask) fails; full-size runs
    only warn, since their logits are still worth comparing."""
    flag = "FAIL" if strict else "WARN"
    gt = {oid: {t: read_mask_png(os.path.join(a.scene, ANN, VIDEO, f"{oid:03d}", f"{t:05d}.png"))
                for t in range(NUM_FRAMES)} for oid in OBJECTS}
    print(f"wrote {len(T)} tensors to {a.out}/tracking.safetensors ({a.family})")
    print("hole filling (calls, low-res pixels changed): " + ", ".join(
        f"{r} {s['calls']}/{s['changed']}" for r, s in report.items()))
    ok = sum(s["changed"] for s in report.values()) > 0
    if not ok:
        print(f"{flag}: hole filling changed no pixel in any run")
    for run, got in runs.items():
        for oid in sorted(got):
            fr = sorted(got[oid])
            sc = [float(got[oid][f]["object_score"]) for f in fr]
            pos = [(got[oid][f]["video_res"] > 0).numpy()[0, 0] for f in fr]
            iou = [float((p & gt[oid][f]).sum() / max(1, (p | gt[oid][f]).sum())) for p, f in zip(pos, fr)]
            frac = [float(p.mean()) for p in pos]
            print(f"{run} obj {oid}: frames {fr[0]}..{fr[-1]}, score {min(sc):.2f}..{max(sc):.2f}, "
                  f"positive fraction {min(frac):.2f}..{max(frac):.2f}, IoU with GT {min(iou):.2f}..{max(iou):.2f}")
            if sum(s > 0 for s in sc) < 0.75 * len(sc):
                print(f"   {flag}: object score positive on fewer than 75% of the frames")
                ok = False
            if any(s > 0 and not (0 < p < 1) for s, p in zip(sc, frac)):
                print(f"   {flag}: an empty or full mask on a frame with an object")
                ok = False
    if jf is not None:
        for mode, r in jf.items():
            print(f"official J&F ({mode}): global {r['global']}; " + ", ".join(
                f"{o['obj']}: {o['J&F']:.3f}" for o in r["objects"]))
    if strict and not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
