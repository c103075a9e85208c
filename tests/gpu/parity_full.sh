#!/usr/bin/env bash
# Full-size parity on the GPU machine (no Rust toolchain, no network there): makes full-size
# fixtures with the official code (torch on the GPU machine's CPU, pure fp32) and measures every
# stage of the vosbench binary against them, on CUDA and on CPU.
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
# There (device run, carry .gpu and .pyref):  bash tests/gpu/parity_full.sh VARIANT...
# Results land in $OUT (or /tmp/parity_out): one JSON per variant and device, and a log.
set -uo pipefail
source .gpu/gpu-env.sh
out=${OUT:-/tmp/parity_out}
mkdir -p "$out"
export SAM2_BUILD_CUDA=0 PYTHONUNBUFFERED=1
for v in "$@"; do
  fx=/tmp/fx_$v
  if [ "$v" = edgetam ]; then
    PYTHONPATH=.pyref/edgetam:.pyref/common python3 tests/reference/make_edgetam_fixtures.py \
      --variant models/edgetam.json --out "$fx" > "$out/fixture_$v.log" 2>&1 || { echo "$v: fixture failed"; tail -5 "$out/fixture_$v.log"; continue; }
  else
    PYTHONPATH=.pyref/sam2:.pyref/common python3 tests/reference/make_sam2_fixtures.py \
      --variant "$v" --out "$fx" > "$out/fixture_$v.log" 2>&1 || { echo "$v: fixture failed"; tail -5 "$out/fixture_$v.log"; continue; }
  fi
  for dev in cuda cpu; do
    echo "== $v on $dev"
    .gpu/vosbench parity --model "$v" --fixture "$fx" --device "$dev" --json "$out/parity_${v}_$dev.json" 2>&1 | tail -n 40
  done
  rm -rf "$fx"
done
