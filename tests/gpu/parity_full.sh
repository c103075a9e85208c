#!/usr/bin/env bash
# Full-size parity on the GPU machine (no Rust toolchain, no network there): makes full-size
# fixtures with the official code (torch on the GPU machine's CPU, pure fp32) and measures the
# vosbench binary against them, on CUDA and on CPU.
#
# Here:  ../shared/tools/cuda-build build --release --features cudnn --bin vosbench
#        ../shared/tools/torch-ref-sources .pyref
# There (device run, carry .gpu and .pyref):
#        bash tests/gpu/parity_full.sh VARIANT...          stage by stage
#        bash tests/gpu/parity_full.sh --tracking VARIANT...  whole-video tracking (SAM 2.1 variants;
#                                             edgetam tracks the video of the first SAM 2.1 variant
#                                             named before it, e.g. `--tracking sam2.1_hiera_tiny edgetam`)
#        bash tests/gpu/parity_full.sh --multi-object VARIANT...  every object of a synthetic video in
#                                             one session (mask prompts, a late object, a click), batched
#                                             and looped object heads
# Results land in $OUT (or /tmp/parity_out): one JSON per variant and device, and logs.
set -uo pipefail
source .gpu/gpu-env.sh
out=${OUT:-/tmp/parity_out}
mkdir -p "$out"
export SAM2_BUILD_CUDA=0 PYTHONUNBUFFERED=1 REF_THREADS=${REF_THREADS:-$(nproc)}
tracking=0
multi=0
if [ "${1:-}" = "--tracking" ]; then tracking=1; shift; fi
if [ "${1:-}" = "--multi-object" ]; then multi=1; shift; fi
video=""   # the full-size SAM 2.1 video fixture EdgeTAM's tracking run reuses (frames and prompts)
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
  if [ $multi = 1 ]; then
    mfx=/tmp/mfx_$v
    if [ "$v" = edgetam ]; then fam=edgetam; var=models/edgetam.json; else fam=sam2; var=$v; fi
    PYTHONPATH=.pyref/$fam:.pyref/common python3 tests/reference/make_multi_object_fixture.py \
      --family $fam --variant "$var" --model "$fx/model.pt" --scene /tmp/mo_scene --out "$mfx" \
      --skip-official-tools > "$out/multi_object_fixture_$v.log" 2>&1 \
      || { echo "$v: multi-object fixture failed"; tail -5 "$out/multi_object_fixture_$v.log"; continue; }
    tail -n 12 "$out/multi_object_fixture_$v.log"
    for dev in ${DEVICES:-cuda cpu}; do
      for batching in batched looped; do
        echo "== $v multi-object on $dev ($batching)"
        .gpu/vosbench parity --model "$var" --fixture "$mfx" --frames /tmp/mo_scene --weights "$fx/model.pt" \
          --tracking --object-batching $batching --device "$dev" \
          --json "$out/multi_object_${v}_${dev}_$batching.json" 2>&1 | tail -n 12
      done
    done
    rm -rf "$mfx"
  elif [ $tracking = 1 ] && [ "$v" = edgetam ]; then
    [ -n "$video" ] || { echo "edgetam: --tracking needs a SAM 2.1 variant before it (its video)"; continue; }
    vfx=/tmp/vfx_$v
    PYTHONPATH=.pyref/edgetam:.pyref/common python3 tests/reference/make_edgetam_video_fixture.py \
      --variant models/edgetam.json --model "$fx/model.pt" --video "$video" --out "$vfx" \
      > "$out/video_fixture_$v.log" 2>&1 \
      || { echo "$v: video fixture failed"; tail -5 "$out/video_fixture_$v.log"; continue; }
    for dev in ${DEVICES:-cuda cpu}; do
      echo "== $v tracking on $dev"
      .gpu/vosbench parity --model models/edgetam.json --fixture "$vfx" --frames "$video" \
        --weights "$fx/model.pt" --tracking --device "$dev" --json "$out/tracking_${v}_$dev.json" 2>&1 | tail -n 12
    done
    rm -rf "$vfx"
  elif [ $tracking = 1 ]; then
    vfx=/tmp/vfx_$v
    PYTHONPATH=.pyref/sam2:.pyref/common python3 tests/reference/make_sam2_video_fixture.py \
      --variant "$v" --model "$fx/model.pt" --out "$vfx" > "$out/video_fixture_$v.log" 2>&1 \
      || { echo "$v: video fixture failed"; tail -5 "$out/video_fixture_$v.log"; continue; }
    for dev in ${DEVICES:-cuda cpu}; do
      echo "== $v tracking on $dev"
      .gpu/vosbench parity --model "$v" --fixture "$vfx" --weights "$fx/model.pt" --tracking \
        --device "$dev" --json "$out/tracking_${v}_$dev.json" 2>&1 | tail -n 12
    done
    [ -n "$video" ] || video=$vfx   # kept for an edgetam run later in the list
  else
    for dev in ${DEVICES:-cuda cpu}; do
      echo "== $v on $dev"
      .gpu/vosbench parity --model "$v" --fixture "$fx" --device "$dev" \
        --json "$out/parity_${v}_$dev.json" 2>&1 | tail -n 4
    done
  fi
  rm -rf "$fx"
done
