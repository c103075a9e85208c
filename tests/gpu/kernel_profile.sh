#!/usr/bin/env bash
# Per-kernel device time of one steady frame, vosbench against the official PyTorch predictor, on
# the GPU machine (issue #15's "measure first"). Same synthetic video, same seeded weights, bf16
# (autocast on the PyTorch side), input 1024, one click on frame 0.
#
# - PyTorch: torch.profiler over propagated frames 16-24 (tests/gpu/speed_torch.py --profile),
#   kernel rows only;
# - vosbench: Nsight Compute's gpu__time_duration of every kernel (CUDA-graph nodes one by one),
#   for two runs that differ only in video length (SHORT and LONG frames); the per-kernel
#   difference divided by LONG - SHORT is the time of a steady frame (the bank is full after
#   frame 7), without frame markers and without the load, prompt and graph-capture kernels.
# - both engines also run once without a profiler for the frame time the kernel sum is set
#   against (GPU-busy fraction = kernel time per frame / steady frame time).
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
# There: bash tests/gpu/kernel_profile.sh [VARIANT...]   (default: sam2.1_hiera_tiny)
# Settings (environment): FRAMES (video length, 40), SHORT (10), LONG (16), PRECISION (bf16),
#   NCU (ncu), VOS_FLAGS (extra `vosbench track` flags), OUT (/tmp/kprof_out).
# Results: $OUT/VARIANT_kernels.md (top 20 kernels of each engine, their share, GPU-busy
# fraction), the raw ncu CSVs, torch.profiler tables and timing JSONs.
set -uo pipefail
out=${OUT:-/tmp/kprof_out}
work=${WORK:-/tmp/kprof_work}
FRAMES=${FRAMES:-40}
source tests/gpu/speed_common.sh
SHORT=${SHORT:-10}
LONG=${LONG:-16}
PRECISION=${PRECISION:-bf16}
NCU=${NCU:-ncu}
VOS_FLAGS=${VOS_FLAGS:-}
[ $# -gt 0 ] || set -- sam2.1_hiera_tiny

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -n 1
  "$PY" -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -n 1
  "$BIN" --version 2>&1 | head -n 1
  "$NCU" --version 2>&1 | tail -n 1
} > "$out/env_kprof.txt"
cat "$out/env_kprof.txt"

make_video
# frame folders of SHORT and LONG frames (links into the video)
for n in "$SHORT" "$LONG"; do
  d=$work/f$n
  rm -rf "$d"; mkdir -p "$d"
  ls "$frames" | sort | head -n "$n" | while read -r f; do ln -s "$frames/$f" "$d/$f"; done
done

for v in "$@"; do
  echo "== $v"
  make_weights "$v" || { echo "   weights FAILED: $(tail -n 1 "$out/${v}_weights.log")"; continue; }
  vos=("$BIN" track --model "$model" --weights "$w/$v.safetensors" --point "$point"
       --device cuda --precision "$PRECISION" --no-masks --quiet)
  # frame times without a profiler
  PYTHONPATH=$pyp "$PY" "$SPEED" run --variant "$v" --weights "$w/model.pt" --frames "$frames" \
    --point "$point" --precision "$PRECISION" --device cuda --json "$out/${v}_torch_time.json" \
    > "$out/${v}_torch_time.log" 2>&1 || echo "   torch timing FAILED: $(tail -n 1 "$out/${v}_torch_time.log")"
  # shellcheck disable=SC2086
  VOSBENCH_PROFILE=1 "${vos[@]}" --frames "$frames" --timing "$out/${v}_vos_time.json" $VOS_FLAGS \
    > "$out/${v}_vos_time.log" 2>&1 || echo "   vosbench timing FAILED: $(tail -n 1 "$out/${v}_vos_time.log")"
  # torch.profiler
  PYTHONPATH=$pyp "$PY" "$SPEED" run --variant "$v" --weights "$w/model.pt" --frames "$frames" \
    --point "$point" --precision "$PRECISION" --device cuda --json "$out/${v}_torch_prof.json" \
    --profile "$out/${v}_torch_profile.txt" > "$out/${v}_torch_prof.log" 2>&1 \
    || echo "   torch profile FAILED: $(tail -n 1 "$out/${v}_torch_prof.log")"
  # ncu, two lengths
  for n in "$SHORT" "$LONG"; do
    t0=$(date +%s)
    # shellcheck disable=SC2086
    "$NCU" --clock-control none --cache-control none --graph-profiling node \
      --metrics gpu__time_duration.sum --csv --print-units base --log-file "$out/${v}_ncu_$n.csv" \
      "${vos[@]}" --frames "$work/f$n" $VOS_FLAGS > "$out/${v}_ncu_$n.log" 2>&1 \
      || echo "   ncu $n FAILED: $(tail -n 2 "$out/${v}_ncu_$n.log" | head -n 1)"
    echo "   ncu $n frames: $(( $(date +%s) - t0 )) s"
  done
  "$PY" tests/gpu/kernel_table.py --variant "$v" --torch-kernels "$out/${v}_torch_profile.txt.kernels.json" \
    --torch-time "$out/${v}_torch_time.json" --vos-time "$out/${v}_vos_time.json" \
    --ncu-short "$out/${v}_ncu_$SHORT.csv" --ncu-long "$out/${v}_ncu_$LONG.csv" \
    --frames-diff $(( LONG - SHORT )) > "$out/${v}_kernels.md" 2> "$out/${v}_kernels.err" \
    || echo "   table FAILED: $(tail -n 1 "$out/${v}_kernels.err")"
  cat "$out/${v}_kernels.md"
  rm -rf "$w"
done
