"""Reference tensors for src/nn/interpolate.rs: torch.nn.functional.interpolate on random inputs.

Writes tests/fixtures/interp/interp.safetensors with, for each case name:
  {case}.input   [B,C,H,W] float32 (uint8 0/1 for the 1024->256 mask case)
  {case}.output  [B,C,h,w] float32, F.interpolate(input, size=(h,w), mode=..., ...)
Case names are "{mode}.{H}x{W}_to_{h}x{w}" with mode in bicubic, bilinear, nearest, bilinear_aa.

Run: /root/venvs/ref/bin/python tests/reference/make_interp_fixtures.py
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_num_threads(2)
torch.manual_seed(0)

SIZES = [
    ((7, 7), (64, 64)),      # Hiera pos_embed, integer-ish upsampling
    ((7, 7), (16, 16)),
    ((14, 14), (64, 64)),    # base_plus pos_embed, non-integer ratio
    ((5, 9), (13, 7)),       # mixed up/down per axis, non-integer
    ((16, 16), (64, 64)),    # mask logits 4x
    ((24, 32), (36, 45)),    # video resolution style, non-integer
    ((64, 64), (16, 16)),    # downsampling 4x
    ((40, 30), (17, 23)),    # downsampling, non-integer
    ((1, 1), (3, 4)),
    ((8, 8), (16, 16)),      # nearest x2 (FPN)
]

MODES = {
    "bicubic": dict(mode="bicubic", align_corners=False),
    "bilinear": dict(mode="bilinear", align_corners=False),
    "nearest": dict(mode="nearest"),
    "bilinear_aa": dict(mode="bilinear", align_corners=False, antialias=True),
}


def main():
    out = {}
    for mode, kw in MODES.items():
        for (h, w), (oh, ow) in SIZES:
            x = torch.randn(2, 3, h, w, dtype=torch.float32)
            y = F.interpolate(x, size=(oh, ow), **kw)
            name = f"{mode}.{h}x{w}_to_{oh}x{ow}"
            out[f"{name}.input"] = x.contiguous()
            out[f"{name}.output"] = y.contiguous()
    # The real mask-prompt resize: 1024 -> 256 antialiased, on a binary-ish mask.
    # Stored as uint8 (values 0/1) to keep the file small; the Rust test converts to float32.
    m = (torch.rand(1, 1, 1024, 1024) > 0.5).float()
    out["bilinear_aa.1024x1024_to_256x256.input"] = m.to(torch.uint8)
    out["bilinear_aa.1024x1024_to_256x256.output"] = F.interpolate(
        m, size=(256, 256), mode="bilinear", align_corners=False, antialias=True
    ).contiguous()
    here = os.path.dirname(os.path.abspath(__file__))
    dst = os.path.join(here, "..", "fixtures", "interp", "interp.safetensors")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    save_file(out, dst)
    print(f"wrote {len(out)} tensors to {os.path.normpath(dst)}")


if __name__ == "__main__":
    main()
