#!/usr/bin/env bash
# Frame time against the number of objects in one session, on the GPU machine: vosbench's
# `bench --objects-sweep` (batched and looped object heads) and the official PyTorch predictor
# with the same objects in one inference state (`add_new_mask` on frame 0 for each), on the same
# synthetic videos with the same frame-0 masks and the same seeded random weights, bf16 (autocast
# on the PyTorch side). Prints one table; docs/performance.md ("Objects in one session") explains
# it and the targets.
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
# There (device run, carry .gpu and .pyref):
#        bash tests/gpu/objects_vs_torch.sh [VARIANT...]   (default: sam2.1_hiera_tiny
#                                                           sam2.1_hiera_base_plus edgetam)
# Settings (environment): COUNTS (1,2,4,8,16), FRAMES (frames per video, 64), WARMUP (5),
#   PRECISION (bf16), DEVICE (cuda), RUN_TIMEOUT (seconds per run, 900), VOS_FLAGS (extra
#   `vosbench bench` flags), PYTHON, VOSBENCH, SAM2_PY / EDGETAM_PY (as speed_vs_torch.sh).
# The videos are vosbench's: `bench --objects-sweep` writes one per object count at the model's
# input side under $OUT/vos_VARIANT/sweep_videos/s<side>_n<N>_f<frames>/, with the masks it
# prompted with in prompts/001.png ...; the PyTorch runs read those very files.
# Results land in $OUT (or /tmp/objects_out): vos_VARIANT/objects_sweep.csv (+ json, and the
# figures of `vosbench plot`), VARIANT_pytorch_nN.json, logs, table.txt. A run that fails prints
# its last log line, gets an error record, and the rest goes on.
set -uo pipefail
out=${OUT:-/tmp/objects_out}
work=${WORK:-/tmp/objects_work}
source tests/gpu/speed_common.sh
OBJ=tests/gpu/objects_torch.py
COUNTS=${COUNTS:-1,2,4,8,16}
WARMUP=${WARMUP:-5}
PRECISION=${PRECISION:-bf16}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
VOS_FLAGS=${VOS_FLAGS:-}
[ $# -gt 0 ] || set -- sam2.1_hiera_tiny sam2.1_hiera_base_plus edgetam

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tail -n 1
  "$BIN" --version 2>&1 | head -n 1
  echo "objects $COUNTS, $FRAMES frames per video, warm-up $WARMUP, $PRECISION"
} > "$out/env.txt"
cat "$out/env.txt"

# last non-empty line of a log
last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }

sweeps=()
for v in "$@"; do
  echo "== $v: seeded weights"
  if ! make_weights "$v"; then
    echo "   FAILED: $(last_line "$out/${v}_weights.log")"
    continue
  fi
  vos=$out/vos_$v
  log=$out/${v}_vosbench.log
  echo "== $v vosbench --objects-sweep $COUNTS ($PRECISION)"
  # shellcheck disable=SC2086
  if ! timeout "$RUN_TIMEOUT" "$BIN" bench --objects-sweep "$COUNTS" --sweep-frames "$FRAMES" \
      --sweep-prompt mask --models "${model}_points" --weights-dir "$w" --device "$DEVICE" \
      --precision "$PRECISION" --warmup-frames "$WARMUP" --out-dir "$vos" --quiet $VOS_FLAGS \
      > "$log" 2>&1; then
    echo "   FAILED: $(last_line "$log")"
  fi
  if [ -s "$vos/objects_sweep.csv" ]; then
    sweeps+=("$vos/objects_sweep.csv")
    "$BIN" plot "$vos/objects_sweep.csv" --out "$vos" > "$vos/plot.log" 2>&1 \
      || echo "   plot failed: $(last_line "$vos/plot.log")"
  fi
  IFS=, read -r -a counts <<< "$COUNTS"
  for n in "${counts[@]}"; do
    # the sweep's video and prompts for N objects (one folder per N; the side is the model's)
    vdir=$(ls -d "$vos"/sweep_videos/s*_n"${n}"_f"${FRAMES}" 2>/dev/null | head -n 1)
    json=$out/${v}_pytorch_n$n.json
    plog=${json%.json}.log
    rm -f "$json"
    echo "== $v pytorch $n objects ($PRECISION)"
    if [ -z "$vdir" ] || [ ! -d "$vdir/prompts" ]; then
      echo "no sweep video for $n objects under $vos/sweep_videos" > "$plog"
      echo "   FAILED: $(last_line "$plog")"
      "$PY" "$OBJ" fail --json "$json" --variant "$v" --objects "$n" --precision "$PRECISION" --log "$plog"
      continue
    fi
    timeout "$RUN_TIMEOUT" env PYTHONPATH="$pyp" "$PY" "$OBJ" run --variant "$v" \
      --weights "$w/model.pt" --frames "$vdir/JPEGImages_24fps/synth_000" --prompts "$vdir/prompts" \
      --precision "$PRECISION" --device "$DEVICE" --warmup-frames "$WARMUP" --json "$json" \
      > "$plog" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || [ ! -s "$json" ]; then
      [ $rc = 124 ] && echo "timed out after ${RUN_TIMEOUT}s" >> "$plog"
      echo "   FAILED (exit $rc): $(last_line "$plog")"
      "$PY" "$OBJ" fail --json "$json" --variant "$v" --objects "$n" --precision "$PRECISION" --log "$plog"
    else
      sed -n '$s/^/   /p' "$plog"
    fi
  done
  rm -rf "$w"
done

echo
shopt -s nullglob
jsons=()
for v in "$@"; do jsons+=("$out/${v}"_pytorch_n*.json); done
"$PY" "$OBJ" table --sweep "${sweeps[@]}" --json "${jsons[@]}" | tee "$out/table.txt"
