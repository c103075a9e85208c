#!/usr/bin/env bash
# Full-size parity on the GPU machine (no Rust toolchain, no network there): makes full-size
# fixtures with the official code (torch on the GPU machine's CPU, pure fp32) and measures the
# vosbench binary against them, on CUDA and on CPU.
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
# There (device run, carry .gpu and .pyref):
#        bash tests/gpu/parity_full.sh VARIANT...          stage by stage
#        bash tests/gpu/parity_full.sh --tracking VARIANT  whole-video tracking (SAM 2.1 variants)
# Results land in $OUT (or /tmp/parity_out): one JSON per variant and device, and logs.
set -uo pipefail
source .gpu/gpu-env.sh
out=${OUT:-/tmp/parity_out}
mkdir -p "$out"
export SAM2_BUILD_CUDA=0 PYTHONUNBUFFERED=1 REF_THREADS=${REF_THREADS:-$(nproc)}
tracking=0
if [ "${1:-}" = "--tracking" ]; then tracking=1; shift; fi
stage_fixture() { # variant dir
  if [ "$1" = edgetam ]; then
    PYTHONPATH=.pyref/edgetam:.pyref/common python3 tests/reference/make_edgetam_fixtures.py \
      --variant models/edgetam.json --out "$2" > "$out/fixture_$1.log" 2>&1
  else
    PYTHONPATH=.pyref/sam2:.pyref/common python3 tests/reference/make_sam2_fixtures.py \
      --variant "$1" --out "$2" > "$out/fixture_$1.log" 2>&1
  fi
}
for v in "$@"; do
  fx=/tmp/fx_$v
  stage_fixture "$v" "$fx" || { echo "$v: fixture failed"; tail -5 "$out/fixture_$v.log"; continue; }
  if [ $tracking = 1 ]; then
    vfx=/tmp/vfx_$v
    PYTHONPATH=.pyref/sam2:.pyref/common python3 tests/reference/make_sam2_video_fixture.py \
      --variant "$v" --model "$fx/model.pt" --out "$vfx" > "$out/video_fixture_$v.log" 2>&1 \
      || { echo "$v: video fixture failed"; tail -5 "$out/video_fixture_$v.log"; continue; }
    for dev in ${DEVICES:-cuda cpu}; do
      echo "== $v tracking on $dev"
      .gpu/vosbench parity --model "$v" --fixture "$vfx" --weights "$fx/model.pt" --tracking \
        --device "$dev" --json "$out/tracking_${v}_$dev.json" 2>&1 | tail -n 12
    done
    rm -rf "$vfx"
  else
    for dev in ${DEVICES:-cuda cpu}; do
      echo "== $v on $dev"
      .gpu/vosbench parity --model "$v" --fixture "$fx" --device "$dev" \
        --json "$out/parity_${v}_$dev.json" 2>&1 | tail -n 4
    done
  fi
  rm -rf "$fx"
done
