#!/usr/bin/env bash
# Device memory held by other vosbench processes while phase B (inference) runs, on the GPU
# machine: the launcher of this build (it never opens CUDA) against an older build whose first
# process ran setup itself and kept its CUDA context, cuDNN handle and workspace arena alive while
# it waited for phase B (OLD_VOSBENCH; docs/benchmark.md, "Process model"). On a Jetson that
# residue sits inside the unified memory phase B is measured and budgeted against; on a discrete
# GPU it shows in the driver's per-process accounting, which this script samples.
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        (and the older build's binary, gzipped beside it, for OLD_VOSBENCH)
# There: bash tests/gpu/launcher_memory.sh
# Settings (environment): VOSBENCH (.gpu/vosbench), OLD_VOSBENCH (unset: this build only),
#   MODELS (sam2.1_hiera_tiny_points,edgetam_points), VIDEOS (3), FRAMES (40), SIZE (854x480),
#   PRECISION (bf16), EXTRA (extra bench flags), OUT (/tmp/launcher_out), WORK (/tmp/launcher_work).
# For each build: `nvidia-smi --query-compute-apps` every 100 ms during the whole bench run;
# table.txt gives, per build, the largest device memory held by processes other than the
# inference processes (summary.json's inference_pids) at a moment an inference process was
# running, the GPU's total used memory at phase B's first sample, and its peak.
set -uo pipefail
out=${OUT:-/tmp/launcher_out}
work=${WORK:-/tmp/launcher_work}
mkdir -p "$out" "$work"
[ -f .gpu/gpu-env.sh ] && source .gpu/gpu-env.sh
BIN=${VOSBENCH:-.gpu/vosbench}
OLD=${OLD_VOSBENCH:-}
MODELS=${MODELS:-sam2.1_hiera_tiny_points,edgetam_points}
VIDEOS=${VIDEOS:-3}
FRAMES=${FRAMES:-40}
SIZE=${SIZE:-854x480}
PRECISION=${PRECISION:-bf16}
EXTRA=${EXTRA:-}
PY=${PYTHON:-python3}

split=$work/split
"$BIN" synth --out "$split" --videos "$VIDEOS" --frames "$FRAMES" --size "$SIZE" --objects 2 \
  --seed 0 > "$out/synth.log" 2>&1 || { echo "synth failed: $(tail -n 1 "$out/synth.log")"; exit 1; }
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 2
  echo "new: $("$BIN" --version 2>&1 | head -n 1)"
  [ -n "$OLD" ] && echo "old: $("$OLD" --version 2>&1 | head -n 1)"
  echo "models $MODELS, $VIDEOS videos x $FRAMES frames of $SIZE, $PRECISION, imgsz 1024"
} > "$out/env.txt"
cat "$out/env.txt"

# sample FILE: one line per process per 100 ms, "t_s,pid,used_MiB", plus "t_s,total,used_MiB".
sample() {
  while :; do
    t=$(date +%s.%N)
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null \
      | sed "s/^/$t,/; s/ //g"
    echo "$t,total,$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1 | tr -d ' ')"
    sleep 0.1
  done >> "$1"
}

run() {
  local label=$1 bin=$2
  local o=$out/run_$label
  rm -rf "$o"; mkdir -p "$o"
  sample "$out/samples_$label.csv" &
  local sp=$!
  # shellcheck disable=SC2086
  "$bin" bench --split-dir "$split" --models "$MODELS" --imgsz 1024 --device cuda:0 \
    --random-weights --precision "$PRECISION" --enable-cudnn-tuning --isolate-models \
    --out-dir "$o" --quiet $EXTRA > "$out/bench_$label.log" 2>&1
  local rc=$?
  kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
  echo "$label: bench exit $rc"
  cp "$o/summary.json" "$out/summary_$label.json" 2>/dev/null
}

run new "$BIN"
[ -n "$OLD" ] && run old "$OLD"

"$PY" - "$out" new ${OLD:+old} > "$out/table.txt" <<'EOF'
import json, sys, collections
out, labels = sys.argv[1], sys.argv[2:]
print("| build | inference processes | residue of other processes during phase B, max MiB | GPU used at phase B start MiB | GPU used peak MiB | other pids seen |")
print("|---|---|---|---|---|---|")
for label in labels:
    try:
        s = json.load(open(f"{out}/summary_{label}.json"))
    except OSError:
        print(f"| {label} | no summary.json | | | | |"); continue
    inf = {int(p) for p in s.get("inference_pids", [])}
    by_t = collections.defaultdict(dict)
    for line in open(f"{out}/samples_{label}.csv"):
        parts = line.strip().split(",")
        if len(parts) != 3 or not parts[2].replace(".", "").isdigit():
            continue
        by_t[float(parts[0])][parts[1]] = float(parts[2])
    residue, start, peak, others = 0.0, None, 0.0, set()
    for t in sorted(by_t):
        d = by_t[t]
        pids = {int(k) for k in d if k != "total"}
        if not pids & inf:
            continue
        rest = {p for p in pids if p not in inf}
        others |= rest
        residue = max(residue, sum(d[str(p)] for p in rest))
        total = d.get("total")
        if total is not None:
            start = total if start is None else start
            peak = max(peak, total)
    print(f"| {label} | {len(inf)} | {residue:.0f} | {start if start is not None else 'n/a'} | {peak:.0f} | {sorted(others)} |")
EOF
cat "$out/table.txt"
