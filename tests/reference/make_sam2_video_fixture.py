"""SAM 2.1 video-tracking parity fixture: the official SAM2VideoPredictor on a synthetic JPEG video.

Writes ``tests/fixtures/video_test/``:
    frames/00000.jpg ... : NUM_FRAMES synthetic frames (WIDTH x HEIGHT, JPEG quality 90): a textured
        background with three moving, rotating, textured objects (``render_frame`` of
        make_sam2_fixtures.py, scene seed 0).
    tracking.safetensors : per-run, per-frame outputs (names in tests/reference/FIXTURES.md).

Model: the small test variant (tests/models/sam2.1_test.json) built by
``build_sam2_video_predictor(sam2.1_hiera_t.yaml, ckpt_path=tests/fixtures/sam2_test/model.pt,
hydra overrides from the JSON)``, i.e. exactly the weights of the stage fixture (strict load).
Pure fp32 on CPU, no autocast, TF32 off.

Runs (each on a fresh ``init_state`` of the JPEG folder, object id 1):
    point: one positive click at the centre of object 1 on frame 0
           (``add_new_points_or_box(frame 0, points=[[x, y]], labels=[1])``, video pixels),
           then ``propagate_in_video()`` forward over all frames.
    box:   a box around object 1 on frame BOX_FRAME
           (``add_new_points_or_box(frame BOX_FRAME, box=[x0, y0, x1, y1])``), then
           ``propagate_in_video()`` forward, then ``propagate_in_video(reverse=True)`` in the
           same state (the backward pass sees the forward pass's memories).

Hole filling: ``fill_holes_in_mask_scores`` needs the sam2._C CUDA extension, absent on CPU, and
would silently skip. ``sam2.utils.misc.get_connected_components`` is therefore replaced by an exact
CPU equivalent (scipy.ndimage.label with a 3x3 structure = 8-connectivity; per-pixel component
area, 0 on background), and the "Skipping the post-processing step" warning is turned into an
error, so hole filling (fill_hole_area=8) really RUNS in this reference. The script prints how many
low-res pixels it changed per run.

Full-size variants (not committed): ``--variant sam2.1_hiera_tiny --model DIR/model.pt --out VDIR``
builds the official predictor from ``models/<variant>.json`` instead, loads the weights written by
``make_sam2_fixtures.py --variant <v> --out DIR`` and tracks the same synthetic video; it also
writes ``VDIR/pillow_rgb.safetensors`` (the frames as Pillow decodes them, as
decode_frames_with_pillow.py does for the committed fixture), so ``vosbench parity --tracking``
can isolate JPEG decoding.
"""

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_sam2_fixtures as base  # noqa: E402

NUM_FRAMES = 24
WIDTH, HEIGHT = 144, 96
BOX_FRAME = 8
SCENE_SEED = 0


def cpu_connected_components(mask):
    """(N,1,H,W) binary -> (labels int32, areas int32), 8-connectivity, like sam2._C."""
    import torch
    from scipy import ndimage

    m = mask.to(torch.uint8).cpu().numpy()
    labels = np.zeros(m.shape, dtype=np.int32)
    areas = np.zeros(m.shape, dtype=np.int32)
    for n in range(m.shape[0]):
        lab, num = ndimage.label(m[n, 0], structure=np.ones((3, 3), dtype=np.int32))
        counts = np.bincount(lab.ravel(), minlength=num + 1).astype(np.int32)
        counts[0] = 0
        labels[n, 0] = lab
        areas[n, 0] = counts[lab]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="output folder (default tests/fixtures/video_test)")
    ap.add_argument("--model", default=None, help="weights (default tests/fixtures/sam2_test/model.pt)")
    ap.add_argument("--variant", default=None,
                    help="models/<variant>.json (default: the test variant); needs --model and --out")
    a = ap.parse_args()
    if a.variant is not None and (a.out is None or a.model is None):
        raise SystemExit("--variant needs --model (its weights) and --out (full-size fixtures are not committed)")
    a.out = a.out or os.path.join(base.REPO, "tests/fixtures/video_test")
    a.model = a.model or os.path.join(base.REPO, "tests/fixtures/sam2_test/model.pt")

    torch = base.setup_torch()
    from PIL import Image
    from safetensors.torch import save_file
    import sam2.utils.misc as misc
    import sam2.sam2_video_predictor as svp

    misc.get_connected_components = cpu_connected_components
    warnings.filterwarnings("error", message=".*Skipping the post-processing step.*")
    fill_stats = {"calls": 0, "changed": 0}
    orig_fill = svp.fill_holes_in_mask_scores

    def counting_fill(mask, max_area):
        out = orig_fill(mask, max_area)
        fill_stats["calls"] += 1
        fill_stats["changed"] += int((out != mask).sum())
        return out

    svp.fill_holes_in_mask_scores = counting_fill

    frames_dir = os.path.join(a.out, "frames")
    os.makedirs(frames_dir, exist_ok=True)
    for t in range(NUM_FRAMES):
        img = base.render_frame(t, WIDTH, HEIGHT, seed=SCENE_SEED)
        Image.fromarray(img).save(os.path.join(frames_dir, f"{t:05d}.jpg"), quality=90)

    if a.variant is not None:
        rgb = np.stack([
            np.asarray(Image.open(os.path.join(frames_dir, f"{t:05d}.jpg")).convert("RGB"))
            for t in range(NUM_FRAMES)
        ])
        save_file({"rgb": torch.from_numpy(np.ascontiguousarray(rgb.astype(np.uint8)))},
                  os.path.join(a.out, "pillow_rgb.safetensors"))

    cfg = base.load_json(a.variant)
    predictor = base.build_from_json(cfg, ckpt_path=a.model)
    assert predictor.fill_hole_area == 8
    T = {}

    def put(name, t):
        if name in T:
            raise SystemExit(f"duplicate fixture name {name}")
        T[name] = t.detach().to(torch.float32).contiguous().clone()

    report = []

    def record(run, state, yielded, order):
        out = state["output_dict_per_obj"][0]
        put(f"{run}.order", torch.tensor(order, dtype=torch.float32))
        scores, fracs = [], []
        for i in sorted(yielded):
            o = out["cond_frame_outputs"].get(i) or out["non_cond_frame_outputs"][i]
            put(f"{run}.frame.{i}.low_res", o["pred_masks"])
            put(f"{run}.frame.{i}.video_res", yielded[i])
            put(f"{run}.frame.{i}.object_score", o["object_score_logits"])
            put(f"{run}.frame.{i}.obj_ptr", o["obj_ptr"])
            put(f"{run}.frame.{i}.is_cond", torch.tensor([1.0 if i in out["cond_frame_outputs"] else 0.0]))
            scores.append(float(o["object_score_logits"]))
            fracs.append(float((yielded[i] > 0).float().mean()))
        report.append((run, sorted(yielded), scores, fracs))
        return scores, fracs

    # ---- (a) one positive click on object 1 at frame 0, forward
    state = predictor.init_state(frames_dir)
    assert (state["video_height"], state["video_width"]) == (HEIGHT, WIDTH)
    cx, cy = base.object_center_px(0, 0, WIDTH, HEIGHT, seed=SCENE_SEED)
    pts = np.array([[cx, cy]], dtype=np.float32)
    labels = np.array([1], dtype=np.int32)
    _, _, prompt_masks = predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=pts, labels=labels)
    put("point.prompt.coords", torch.from_numpy(pts)[None])
    put("point.prompt.labels", torch.from_numpy(labels)[None].float())
    put("point.prompt.frame", torch.tensor([0.0]))
    put("point.prompt.video_res", prompt_masks)
    yielded, order = {}, []
    for fidx, obj_ids, vm in predictor.propagate_in_video(state):
        assert list(obj_ids) == [1]
        yielded[fidx] = vm.clone()
        order.append(fidx)
    fills_a = dict(fill_stats)
    record("point", state, yielded, order)

    # ---- (b) box on object 1 at BOX_FRAME, forward then backward
    fill_stats.update(calls=0, changed=0)
    state = predictor.init_state(frames_dir)
    box = np.array(base.object_box_px(BOX_FRAME, 0, WIDTH, HEIGHT, seed=SCENE_SEED), dtype=np.float32)
    box += np.array([-2, -2, 2, 2], dtype=np.float32)  # a slightly loose user box
    _, _, prompt_masks = predictor.add_new_points_or_box(state, frame_idx=BOX_FRAME, obj_id=1, box=box)
    put("box.prompt.box", torch.from_numpy(box))
    put("box.prompt.frame", torch.tensor([float(BOX_FRAME)]))
    put("box.prompt.video_res", prompt_masks)
    yielded, order = {}, []
    for fidx, _, vm in predictor.propagate_in_video(state):
        yielded[fidx] = vm.clone()
        order.append(fidx)
    for fidx, _, vm in predictor.propagate_in_video(state, reverse=True):
        if fidx in yielded:
            assert fidx == BOX_FRAME and torch.equal(yielded[fidx], vm), fidx
        yielded[fidx] = vm.clone()
        order.append(fidx)
    fills_b = dict(fill_stats)
    record("box", state, yielded, order)

    save_file(T, os.path.join(a.out, "tracking.safetensors"))
    print(f"wrote {len(T)} tensors to {a.out}/tracking.safetensors; {NUM_FRAMES} frames {WIDTH}x{HEIGHT}")
    print(f"hole filling: point run {fills_a['calls']} calls, {fills_a['changed']} low-res pixels changed; "
          f"box run {fills_b['calls']} calls, {fills_b['changed']} changed")
    ok = True
    for run, frames, scores, fracs in report:
        npos = sum(s > 0 for s in scores)
        print(f"{run}: {len(frames)} frames, object score > 0 on {npos}; "
              f"score min {min(scores):.3f} max {max(scores):.3f}; "
              f"positive-pixel fraction min {min(fracs):.3f} max {max(fracs):.3f}")
        print("   per frame (frame: score / positive fraction): " + ", ".join(
            f"{f}: {s:.2f}/{p:.2f}" for f, s, p in zip(frames, scores, fracs)))
        if npos < 0.75 * len(frames):
            print(f"   FAIL: object score positive on fewer than 75% of the {run} frames")
            ok = False
        bad = [f for f, s, p in zip(frames, scores, fracs) if s > 0 and not (0.0 < p < 1.0)]
        if bad:
            print(f"   FAIL: empty or full masks on frames with an object: {bad}")
            ok = False
    if fills_a["calls"] == 0 or fills_b["calls"] == 0:
        print("FAIL: hole filling never ran")
        ok = False
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
