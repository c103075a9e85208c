#!/usr/bin/env bash
# Speed against PyTorch on the GPU machine (no Rust toolchain, no network there): the official
# PyTorch predictors (eager; f32 with TF32 as PyTorch allows it, and bf16 autocast as the official
# demo does) and `vosbench track` (f32, f32 --tf32, bf16) on the same synthetic video with the same
# seeded random weights, one process per run. Prints one table; docs/performance.md
# ("Speed against PyTorch: how to run") explains the columns and the targets.
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
# There (device run, carry .gpu and .pyref):
#        bash tests/gpu/speed_vs_torch.sh [VARIANT...]   (default: sam2.1_hiera_tiny
#                                                         sam2.1_hiera_base_plus edgetam)
# Settings (environment): FRAMES (64), SIZE (854x480), DEVICE (cuda), WARMUP (5),
#   TORCH_MODES ("f32 bf16"; add "bf16-compiled" / "f32-compiled" for the official vos_optimized
#   predictor with torch.compile in torch's default mode instead of the max-autotune it asks for,
#   which did not finish within a device call; SAM 2.1 variants only, compile time in its first
#   mask; RUN_TIMEOUT must leave room for the compile), VOS_MODES ("f32 f32-tf32 bf16"), RUN_TIMEOUT (seconds per run, 600),
#   VOS_FLAGS (extra `vosbench track` flags, e.g. --enable-cudnn-tuning), PYTHON (python3),
#   VOSBENCH (.gpu/vosbench), SAM2_PY / EDGETAM_PY (PYTHONPATH of the official packages),
#   PROFILE (set: torch.profiler tables of frames 16-24 in $OUT/*_profile.txt, and vosbench's
#   VOSBENCH_PROFILE stage table at the end of its log; the profiled runs' timings are not
#   comparable, so profile in a separate run).
# Results land in $OUT (or /tmp/speed_out): one JSON and one log per run, table.txt. A run that
# fails prints its last log line, gets an error record, and the rest goes on.
set -uo pipefail
out=${OUT:-/tmp/speed_out}
work=${WORK:-/tmp/speed_work}
source tests/gpu/speed_common.sh
WARMUP=${WARMUP:-5}
TORCH_MODES=${TORCH_MODES:-f32 bf16}
VOS_MODES=${VOS_MODES:-f32 f32-tf32 bf16}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
VOS_FLAGS=${VOS_FLAGS:-}
[ $# -gt 0 ] || set -- sam2.1_hiera_tiny sam2.1_hiera_base_plus edgetam

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 4
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tail -n 1
  "$BIN" --version 2>&1 | head -n 1
} > "$out/env.txt"
cat "$out/env.txt"

# one JSON ENGINE VARIANT PRECISION TF32(0|1) CMD...: run CMD, which writes JSON; on failure write
# an error record with the last line of its log.
one() {
  local json=$1 engine=$2 v=$3 prec=$4 tf=$5
  shift 5
  local log=${json%.json}.log tf_flag=() label=$prec
  [ "$tf" = 1 ] && tf_flag=(--tf32) && label="$prec tf32"
  rm -f "$json"
  echo "== $v $engine $label"
  timeout "$RUN_TIMEOUT" "$@" > "$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$json" ]; then
    [ $rc = 124 ] && echo "timed out after ${RUN_TIMEOUT}s" >> "$log"
    echo "   FAILED (exit $rc): $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
    "$PY" "$SPEED" fail --json "$json" --engine "$engine" --variant "$v" --precision "$prec" \
      "${tf_flag[@]}" --log "$log"
  else
    "$PY" "$SPEED" table "$json" | sed -n '3s/^/   /p'
  fi
}

# every run of a variant as failed (its weights could not be made)
all_failed() { # variant log
  for m in $TORCH_MODES; do
    "$PY" "$SPEED" fail --json "$out/${1}_pytorch_$m.json" --engine pytorch --variant "$1" \
      --precision "${m%-compiled}" --tf32 --log "$2"
  done
  for m in $VOS_MODES; do
    local tf=()
    [ "$m" = f32-tf32 ] && tf=(--tf32)
    "$PY" "$SPEED" fail --json "$out/${1}_vosbench_$m.json" --engine vosbench --variant "$1" \
      --precision "${m%-tf32}" "${tf[@]}" --log "$2"
  done
}

make_video
echo "video: $FRAMES frames $SIZE in $frames, click at $point"

for v in "$@"; do
  echo "== $v: seeded weights"
  if ! make_weights "$v"; then
    echo "   FAILED: $(grep -v '^[[:space:]]*$' "$out/${v}_weights.log" | tail -n 1)"
    all_failed "$v" "$out/${v}_weights.log"
    continue
  fi
  cp "$w/weights.json" "$out/${v}_weights.json.txt" 2>/dev/null
  for m in $TORCH_MODES; do
    # bf16-compiled / f32-compiled: the official vos_optimized predictor (SAM 2.1 only)
    comp=()
    [ "${m%-compiled}" != "$m" ] && comp=(--compiled)
    case "$v" in edgetam*) [ ${#comp[@]} -gt 0 ] && continue ;; esac
    one "$out/${v}_pytorch_$m.json" pytorch "$v" "${m%-compiled}" 1 \
      env PYTHONPATH=$pyp "$PY" "$SPEED" run --variant "$v" --weights "$w/model.pt" \
      --frames "$frames" --point "$point" --precision "${m%-compiled}" "${comp[@]}" --device "$DEVICE" \
      --warmup-frames "$WARMUP" --json "$out/${v}_pytorch_$m.json" \
      ${PROFILE:+--profile "$out/${v}_pytorch_${m}_profile.txt"}
  done
  # The driver compiles candle's PTX kernels (vosbench's own ship as SASS too) the first time a process
  # on the machine loads it and keeps the result in its disk cache: on a fresh machine the first
  # vosbench process pays that once (up to ~20 s on the H200). Two short untimed runs fill the
  # cache first, so every timed run sees what a user's second run sees; their times are printed.
  if [ -z "${jit_warm:-}" ] && [ -n "$VOS_MODES" ]; then
    jit_warm=1
    wf=$work/jit_frames
    mkdir -p "$wf"
    for f in $(ls "$frames" | head -n 8); do ln -sf "$(cd "$frames" && pwd)/$f" "$wf/$f"; done
    for p in bf16 f32; do
      t0=$(date +%s%N)
      "$BIN" track --model "$model" --weights "$w/$v.safetensors" --frames "$wf" --point "$point" \
        --device "$DEVICE" --precision $p --no-masks --quiet > "$out/jit_warmup_$p.log" 2>&1
      rc=$?
      echo "   JIT warm-up: vosbench $p on 8 frames took $(( ($(date +%s%N) - t0) / 1000000 )) ms (exit $rc)"
    done
  fi
  for m in $VOS_MODES; do
    tf=0 flags=()
    [ "$m" = f32-tf32 ] && tf=1 && flags=(--tf32)
    # shellcheck disable=SC2086
    one "$out/${v}_vosbench_$m.json" vosbench "$v" "${m%-tf32}" $tf \
      env ${PROFILE:+VOSBENCH_PROFILE=1} "$BIN" track --model "$model" --weights "$w/$v.safetensors" --frames "$frames" \
      --point "$point" --device "$DEVICE" --precision "${m%-tf32}" "${flags[@]}" \
      --warmup-frames "$WARMUP" --no-masks --quiet $VOS_FLAGS \
      --timing "$out/${v}_vosbench_$m.json"
  done
  rm -rf "$w"
done

echo
shopt -s nullglob
jsons=()
for v in "$@"; do jsons+=("$out/${v}"_pytorch_*.json "$out/${v}"_vosbench_*.json); done
"$PY" "$SPEED" table "${jsons[@]}" | tee "$out/table.txt"
