#!/usr/bin/env bash
# CUDA engine and benchmark checks on the GPU machine (no Rust toolchain, no network there).
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
#        mkdir -p .gpufx && cp -r tests/fixtures/{sam2_test,edgetam_test,video_test,edgetam_video} .gpufx/
#        (drop the stage files the tracking runs do not read if the tree must stay under 64 MiB)
# There: bash tests/gpu/engine_check.sh [probe] [small] [stages] [bench] [budget]   (default: all)
#   probe   `vosbench probe` with convolution tuning for tiny, base_plus and EdgeTAM at 1024
#   small   whole-video tracking of the committed small fixtures on CUDA: f32 with cuDNN's
#           heuristic algorithms, f32 tuned, and f16 / bf16 (looser tolerances, docs/parity.md)
#   stages  full-size stage parity of tiny and EdgeTAM on CUDA through the cuDNN engine (TF32 off)
#   bench   full-size benchmark: sam2.1 tiny/base_plus and EdgeTAM, points and bbox, at 1024,
#           seeded random weights, cuDNN tuning on, pure f32 (docs/benchmark.md)
#   budget  the same split under --mem-budget-mb 3800, held against the device pool (a discrete
#           GPU); not a Jetson preset, those are in docs/jetson.md
#   precision the bench split at f32 with --tf32 and at bf16
#   profile per-stage timings (VOSBENCH_PROFILE=1) of tiny, base_plus and EdgeTAM at 1024, pure f32
# bench, budget and profile pass --no-tf32: `vosbench bench` allows TF32 by default on compute
# capability 8.0 and newer, and the figures docs/ quote from these steps are pure f32.
# Everything lands in $OUT (or /tmp/engine_out); the printed tails are what docs/ quote.
set -uo pipefail
source .gpu/gpu-env.sh
out=${OUT:-/tmp/engine_out}
fx=${FX:-.gpufx}
B=.gpu/vosbench
mkdir -p "$out"
export SAM2_BUILD_CUDA=0 PYTHONUNBUFFERED=1
steps=${*:-probe small stages bench budget}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# The full-size synthetic split the bench steps share (3 videos of 48 frames at 854x480, 2 objects).
split() {
  [ -d /tmp/split_full ] || $B synth --out /tmp/split_full --videos 3 --frames 48 --size 854x480 \
    --objects 2 --seed 7 > /dev/null
}
split

for step in $steps; do
case $step in
probe)
  echo "== probe with tuning"
  $B probe --models sam2.1_hiera_tiny,sam2.1_hiera_base_plus,edgetam --workspace-mb 256 \
    --json "$out/probe.json" > "$out/probe.txt" 2>&1
  echo "exit $?"; grep -v "^ " "$out/probe.txt" | tail -n 80
  ;;
small)
  for mode in "f32" "f32 --enable-cudnn-tuning" "f16" "bf16"; do
    set -- $mode
    prec=$1; shift
    tol=(); [ "$prec" != f32 ] && tol=(--track-tolerance 0.5 --min-iou 0.5)
    echo "== small SAM 2.1 tracking on CUDA: $prec $*"
    NVIDIA_TF32_OVERRIDE=0 $B parity --model tests/models/sam2.1_test.json --fixture "$fx/video_test" \
      --weights "$fx/sam2_test/model.pt" --tracking --device cuda --precision "$prec" "$@" "${tol[@]}" \
      --json "$out/small_sam2_${prec}$([ $# -gt 0 ] && echo _tuned).json" 2>&1 | tail -n 6
    echo "== small EdgeTAM tracking on CUDA: $prec $*"
    NVIDIA_TF32_OVERRIDE=0 $B parity --model tests/models/edgetam_test.json --fixture "$fx/edgetam_video" \
      --frames "$fx/video_test" --weights "$fx/edgetam_test/model.pt" --tracking --device cuda \
      --precision "$prec" "$@" "${tol[@]}" \
      --json "$out/small_edgetam_${prec}$([ $# -gt 0 ] && echo _tuned).json" 2>&1 | tail -n 6
  done
  ;;
stages)
  NVIDIA_TF32_OVERRIDE=0 DEVICES=cuda OUT="$out" bash tests/gpu/parity_full.sh sam2.1_hiera_tiny edgetam
  ;;
bench)
  echo "== full-size bench (tuning on)"
  $B bench --split-dir /tmp/split_full --models sam2.1_tiny_points,sam2.1_tiny_bbox,sam2.1_base_plus_points,sam2.1_base_plus_bbox,edgetam_points,edgetam_bbox \
    --imgsz 1024 --device cuda:0 --random-weights --enable-cudnn-tuning --workspace-mb 256 --no-tf32 \
    --preprocessed-dir /tmp/pre_full --out-dir "$out/bench_full" > "$out/bench_full.log" 2>&1
  echo "exit $?"; tail -n 30 "$out/bench_full.log"
  ;;
budget)
  echo "== full-size bench under --mem-budget-mb 3800"
  $B bench --split-dir /tmp/split_full --models sam2.1_tiny_points,sam2.1_base_plus_points,edgetam_points,edgetam_bbox \
    --imgsz 1024 --device cuda:0 --random-weights --enable-cudnn-tuning --workspace-mb 256 --mem-budget-mb 3800 --no-tf32 \
    --preprocessed-dir /tmp/pre_budget --out-dir "$out/bench_budget" > "$out/bench_budget.log" 2>&1
  echo "exit $?"; tail -n 30 "$out/bench_budget.log"
  ;;
profile)
  # Where a frame's time goes: every instrumented stage synchronized and timed (VOSBENCH_PROFILE).
  rm -rf /tmp/split_prof
  $B synth --out /tmp/split_prof --videos 1 --frames 48 --size 854x480 --objects 1 --seed 7 > /dev/null
  for m in ${PROFILE_MODELS:-sam2.1_tiny_points sam2.1_base_plus_points edgetam_points}; do
    echo "== profile $m"
    VOSBENCH_PROFILE=1 $B bench --split-dir /tmp/split_prof --models $m --imgsz 1024 --device cuda:0 \
      --random-weights --no-tf32 --preprocessed-dir /tmp/pre_prof --out-dir "$out/prof_$m" > "$out/prof_$m.log" 2>&1
    echo "exit $?"; grep -A40 "stage timings" "$out/prof_$m.log" | tail -n 22
  done
  ;;
precision)
  # The same split at other precisions: f32 with TF32 allowed, and bf16.
  for p in "f32 --tf32" "bf16"; do
    set -- $p
    prec=$1; shift
    tag=$prec$([ $# -gt 0 ] && echo _tf32)
    echo "== full-size bench, --precision $prec $*"
    $B bench --split-dir /tmp/split_full --models sam2.1_tiny_points,sam2.1_base_plus_points,edgetam_points \
      --imgsz 1024 --device cuda:0 --random-weights --enable-cudnn-tuning --workspace-mb 256 \
      --precision "$prec" "$@" --preprocessed-dir /tmp/pre_full --out-dir "$out/bench_$tag" \
      > "$out/bench_$tag.log" 2>&1
    echo "exit $?"; grep -A8 "^model " "$out/bench_$tag.log"
  done
  ;;
*) echo "unknown step $step" ;;
esac
done
