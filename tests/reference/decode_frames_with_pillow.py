"""Decode the video_test JPEG frames exactly as the official video predictor does
(Pillow `Image.open(p).convert("RGB")`) and store the RGB, so the tracking parity test can feed
the tracker the official decoded pixels and isolate JPEG decoding (which tests/units/preprocess.rs
measures separately).

    /root/venvs/ref/bin/python tests/reference/decode_frames_with_pillow.py
"""
import os
import numpy as np
from PIL import Image
from safetensors.numpy import save_file

root = os.path.join(os.path.dirname(__file__), "..", "fixtures", "video_test")
frames = sorted(
    (f for f in os.listdir(os.path.join(root, "frames")) if f.lower().endswith((".jpg", ".jpeg"))),
    key=lambda f: int(os.path.splitext(f)[0]),
)
rgb = np.stack([np.asarray(Image.open(os.path.join(root, "frames", f)).convert("RGB")) for f in frames])
save_file({"rgb": np.ascontiguousarray(rgb.astype(np.uint8))}, os.path.join(root, "pillow_rgb.safetensors"))
print(f"{len(frames)} frames {rgb.shape} -> pillow_rgb.safetensors")
