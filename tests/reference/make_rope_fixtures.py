"""RoPE parity fixture: runs the official rotary-encoding functions on seeded random q/k.

Writes tests/fixtures/rope/rope.safetensors, read by tests/parity/memory.rs.

* `compute_axial_cis` tables (`table.{name}.cos` / `.sin`, [rows, dim/2]): the 256-wide single-head
  table of the released models on the 64x64 grid (every 13th token, to keep the file small, with the
  token indices in `table.{name}.rows`) and on EdgeTAM's 16x16 key grid.
* `apply_rotary_enc` (SAM 2.1 `RoPEAttention`) cases `v1.{case}.{q,k,q_out,k_out}` plus
  `v1.{case}.meta` = [grid_w, grid_h, num_k_exclude_rope, repeat_k]: the keys' first
  `Nk - num_k_exclude_rope` tokens are rotated (tiled over memory frames when repeat_k) and the
  trailing object-pointer tokens are not, exactly as `RoPEAttention.forward` slices them.
* `apply_rotary_enc_v2` (EdgeTAM `RoPEAttentionv2`) cases `v2.{case}.{q,k,q_out,k_out}` plus
  `v2.{case}.meta` = [q_w, q_h, k_w, k_h, num_k_exclude_rope, num_spatial_mem].

Run from the repository root:
    PYTHONPATH=/root/venvs/edgetampkg /root/venvs/ref/bin/python tests/reference/make_rope_fixtures.py
The EdgeTAM package carries both the v1 functions (identical to SAM 2.1's) and the v2 one; the
script checks that the v1 functions are the same source in both packages when SAM 2.1 is importable.
"""

import argparse
import inspect
import os

import torch
from safetensors.torch import save_file

from sam2.modeling import position_encoding as pe

OUT_DEFAULT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "rope", "rope.safetensors")


def check_v1_same_as_sam21():
    """The v1 functions must be the SAM 2.1 ones; compare source text with the sam2 1.1.0 package."""
    path = "/root/venvs/sam2pkg/sam2/modeling/position_encoding.py"
    if not os.path.exists(path):
        print("note: SAM 2.1 package not found, v1 source not cross-checked")
        return
    with open(path) as f:
        sam21 = f.read()
    for fn in (pe.init_t_xy, pe.compute_axial_cis, pe.reshape_for_broadcast, pe.apply_rotary_enc):
        src = inspect.getsource(fn)
        assert src in sam21, f"{fn.__name__} differs between EdgeTAM and SAM 2.1"


def split_cis(cis):
    return cis.real.contiguous(), cis.imag.contiguous()


def v1_case(out, name, gen, b, h, dim, grid, n_frames, n_ptr, repeat_k, theta=10000.0):
    w, hh = grid
    nq = w * hh
    q = torch.randn(b, h, nq, dim, generator=gen)
    k = torch.randn(b, h, nq * n_frames + n_ptr, dim, generator=gen)
    cis = pe.compute_axial_cis(dim=dim, end_x=w, end_y=hh, theta=theta)
    k_out = k.clone()
    num_k_rope = k.size(-2) - n_ptr
    q_out, k_out[:, :, :num_k_rope] = pe.apply_rotary_enc(
        q, k_out[:, :, :num_k_rope], freqs_cis=cis, repeat_freqs_k=repeat_k
    )
    out[f"v1.{name}.q"] = q
    out[f"v1.{name}.k"] = k
    out[f"v1.{name}.q_out"] = q_out.contiguous()
    out[f"v1.{name}.k_out"] = k_out.contiguous()
    out[f"v1.{name}.meta"] = torch.tensor([w, hh, n_ptr, int(repeat_k)], dtype=torch.int64)


def v2_case(out, name, gen, b, h, dim, q_grid, k_grid, n_plain, n_frames, n_ptr, theta=10000.0):
    nq = q_grid[0] * q_grid[1]
    nk_grid = k_grid[0] * k_grid[1]
    q = torch.randn(b, h, nq, dim, generator=gen)
    k = torch.randn(b, h, (n_plain + nk_grid) * n_frames + n_ptr, dim, generator=gen)
    cis_q = pe.compute_axial_cis(dim=dim, end_x=q_grid[0], end_y=q_grid[1], theta=theta)
    cis_k = pe.compute_axial_cis(dim=dim, end_x=k_grid[0], end_y=k_grid[1], theta=theta)
    q_out = pe.apply_rotary_enc_v2(q, cis_q, repeat_freqs=1)
    k_out = k.clone()
    num_k_rope = k.size(-2) - n_ptr
    k_out[:, :, :num_k_rope] = pe.apply_rotary_enc_v2(
        k_out[:, :, :num_k_rope], cis_k, repeat_freqs=n_frames
    )
    out[f"v2.{name}.q"] = q
    out[f"v2.{name}.k"] = k
    out[f"v2.{name}.q_out"] = q_out.contiguous()
    out[f"v2.{name}.k_out"] = k_out.contiguous()
    out[f"v2.{name}.meta"] = torch.tensor(
        [q_grid[0], q_grid[1], k_grid[0], k_grid[1], n_ptr, n_frames], dtype=torch.int64
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT_DEFAULT)
    args = ap.parse_args()
    torch.set_num_threads(2)
    check_v1_same_as_sam21()
    gen = torch.Generator().manual_seed(20241127)
    out = {}

    # Tables of the released configuration (one 256-wide head, theta 1e4).
    cis = pe.compute_axial_cis(dim=256, end_x=64, end_y=64, theta=10000.0)
    rows = torch.arange(0, 64 * 64, 13)
    c, s = split_cis(cis[rows])
    out["table.d256_64x64.cos"], out["table.d256_64x64.sin"] = c, s
    out["table.d256_64x64.rows"] = rows.to(torch.int64)
    out["table.d256_64x64.meta"] = torch.tensor([256, 64, 64], dtype=torch.int64)
    cis = pe.compute_axial_cis(dim=256, end_x=16, end_y=16, theta=10000.0)
    c, s = split_cis(cis)
    out["table.d256_16x16.cos"], out["table.d256_16x16.sin"] = c, s
    out["table.d256_16x16.rows"] = torch.arange(256, dtype=torch.int64)
    out["table.d256_16x16.meta"] = torch.tensor([256, 16, 16], dtype=torch.int64)

    # SAM 2.1 RoPEAttention: self-attention (same grid, no repeat) and cross-attention to
    # several memory frames with and without trailing object-pointer tokens.
    v1_case(out, "self", gen, 2, 2, 32, (8, 8), 1, 0, False)
    v1_case(out, "cross_r1_p0", gen, 1, 1, 64, (8, 8), 1, 0, True)
    v1_case(out, "cross_r3_p0", gen, 1, 2, 32, (8, 8), 3, 0, True)
    v1_case(out, "cross_r3_p4", gen, 2, 1, 64, (8, 8), 3, 4, True)
    v1_case(out, "cross_r7_p16", gen, 1, 1, 64, (6, 6), 7, 16, True)
    v1_case(out, "d256_r2_p4", gen, 1, 1, 256, (6, 6), 2, 4, True)

    # EdgeTAM RoPEAttentionv2: q on an 8x8 grid, keys per frame = plain 1D latents then a 4x4 grid.
    v2_case(out, "r1_p0", gen, 1, 1, 32, (8, 8), (4, 4), 16, 1, 0)
    v2_case(out, "r2_p4", gen, 2, 2, 32, (8, 8), (4, 4), 16, 2, 4)
    v2_case(out, "r3_p8", gen, 1, 1, 64, (8, 8), (4, 4), 10, 3, 8)
    v2_case(out, "r2_grid_only", gen, 1, 1, 32, (8, 8), (4, 4), 0, 2, 4)
    v2_case(out, "d256_r2_p4", gen, 1, 1, 256, (6, 6), (3, 3), 4, 2, 4)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, args.out)
    total = sum(v.numel() * v.element_size() for v in out.values())
    print(f"wrote {len(out)} tensors ({total / 1e6:.2f} MB) to {args.out}")


if __name__ == "__main__":
    main()
