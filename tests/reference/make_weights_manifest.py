"""Write a manifest of an original checkpoint as PyTorch itself reads it: for every state-dict
entry its dtype, shape and the FNV-1a 64-bit hash of its raw little-endian bytes.

The Rust converter test (tests/cli/convert.rs) converts the same checkpoint and checks every tensor of
the result against this manifest, so bit-identity is judged by torch's reading of the file, not by
the reader under test.

    PYTHONPATH=/root/venvs/sam2pkg /root/venvs/ref/bin/python tests/reference/make_weights_manifest.py \
        tests/fixtures/sam2_test/model.pt tests/fixtures/weights/sam2_test.manifest.json
"""

import json
import sys

import numpy as np
import torch

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK
    return h


def main(src: str, dst: str) -> None:
    torch.set_num_threads(2)
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    sd = ckpt["model"]
    entries = {}
    for name, t in sd.items():
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        entries[name] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "fnv1a64": f"{fnv1a64(raw):016x}",
        }
    with open(dst, "w") as f:
        json.dump({"source": src, "tensors": entries}, f, indent=1, sort_keys=True)
    print(f"{dst}: {len(entries)} tensors")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
