#!/usr/bin/env python3
"""Top kernels of one steady frame, vosbench (Nsight Compute CSVs of two runs of different
lengths) beside PyTorch (torch.profiler kernel rows), as a Markdown table (kernel_profile.sh)."""
import argparse
import collections
import csv
import json

FULL_BANK = 8  # latencies from this frame on: the memory bank holds num_maskmem frames


def ncu_kernels(path):
    """name -> (total ns, launches) from `ncu --csv --print-units base` output."""
    tot, cnt = collections.Counter(), collections.Counter()
    with open(path, newline="") as f:
        lines = [ln for ln in f if ln.startswith('"')]
    rows = csv.reader(lines)
    header = next(rows)
    ki, mi, vi = header.index("Kernel Name"), header.index("Metric Name"), header.index("Metric Value")
    for r in rows:
        if len(r) <= vi or r[mi] != "gpu__time_duration.sum":
            continue
        tot[r[ki]] += float(r[vi].replace(",", ""))
        cnt[r[ki]] += 1
    return tot, cnt


def steady_ms(path):
    with open(path) as f:
        lat = json.load(f).get("latencies_ms") or []
    lat = lat[FULL_BANK - 1:]
    return sum(lat) / len(lat) if lat else None


def short(name, n=90):
    name = name.replace("\n", " ")
    return name if len(name) <= n else name[: n - 3] + "..."


def table(title, rows, frame_ms, top):
    total = sum(ms for _, ms, _ in rows)
    print(f"### {title}\n")
    busy = f", GPU busy {100 * total / frame_ms:.0f}% of the {frame_ms:.2f} ms steady frame" if frame_ms else ""
    print(f"kernel time per steady frame {total:.3f} ms in {sum(c for _, _, c in rows):.0f} launches{busy}\n")
    print("| # | kernel | ms/frame | share | launches/frame |")
    print("|---|---|---|---|---|")
    for i, (name, ms, c) in enumerate(sorted(rows, key=lambda r: -r[1])[:top], 1):
        print(f"| {i} | `{short(name)}` | {ms:.3f} | {100 * ms / total:.1f}% | {c:g} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True)
    ap.add_argument("--torch-kernels", required=True)
    ap.add_argument("--torch-time", required=True)
    ap.add_argument("--vos-time", required=True)
    ap.add_argument("--ncu-short", required=True)
    ap.add_argument("--ncu-long", required=True)
    ap.add_argument("--frames-diff", type=int, required=True)
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args()
    print(f"## {a.variant}: kernels of one steady frame\n")
    try:
        ts, cs = ncu_kernels(a.ncu_short)
        tl, cl = ncu_kernels(a.ncu_long)
        rows = []
        for k in set(tl) | set(ts):
            ms = (tl[k] - ts[k]) / a.frames_diff / 1e6
            c = (cl[k] - cs[k]) / a.frames_diff
            if ms > 0 or c > 0:
                rows.append((k, max(ms, 0.0), c))
        table(f"vosbench (Nsight Compute, {a.frames_diff}-frame difference of two runs)", rows,
              steady_ms(a.vos_time), a.top)
    except (OSError, ValueError, StopIteration) as e:
        print(f"vosbench: no kernel table ({e})\n")
    try:
        with open(a.torch_kernels) as f:
            tk = json.load(f)
        n = tk["frames"]
        rows = [(k["name"], k["device_us"] / n / 1e3, k["count"] / n) for k in tk["kernels"]]
        table(f"PyTorch (torch.profiler over {n} frames)", rows, steady_ms(a.torch_time), a.top)
    except (OSError, ValueError, KeyError) as e:
        print(f"PyTorch: no kernel table ({e})\n")


if __name__ == "__main__":
    main()
