# Shared by speed_vs_torch.sh and memory_check.sh (source it after setting `out` and `work`):
# the settings both read, the synthetic video with its click, and seeded weights per variant.
source .gpu/gpu-env.sh
mkdir -p "$out" "$work"
export SAM2_BUILD_CUDA=0 PYTHONUNBUFFERED=1
# PyTorch runs without gpu-env.sh's LD_LIBRARY_PATH: that path puts the system's cuDNN (9.14)
# ahead of the one torch is built against and bundles (9.19), and torch then runs on the older
# library (its version check prints an error; until 2026-12-04 every PyTorch figure ran so).
# vosbench keeps the path it needs.
PY=$work/torch-python
printf '#!/bin/sh\nunset LD_LIBRARY_PATH\nexec %s "$@"\n' "${PYTHON:-python3}" > "$PY"
chmod +x "$PY"
BIN=${VOSBENCH:-.gpu/vosbench}
FRAMES=${FRAMES:-64}
SIZE=${SIZE:-854x480}
DEVICE=${DEVICE:-cuda}
SPEED=tests/gpu/speed_torch.py
# PYTHONPATH of the two official packages (both are named sam2)
SAM2_PY=${SAM2_PY:-.pyref/sam2:.pyref/common}
EDGETAM_PY=${EDGETAM_PY:-.pyref/edgetam:.pyref/common}

# make_video: FRAMES frames of SIZE (JPEG) and a click on the largest object of frame 0; sets
# `frames` and `point`, exits on failure.
make_video() {
  local split=$work/split
  if ! "$BIN" synth --out "$split" --videos 1 --frames "$FRAMES" --size "$SIZE" --objects 4 \
      --seed 0 > "$out/synth.log" 2>&1; then
    echo "synth failed: $(tail -n 1 "$out/synth.log")"
    exit 1
  fi
  frames=$split/JPEGImages_24fps/synth_000
  point=$("$PY" "$SPEED" prompt --split "$split" 2> "$out/prompt.log") \
    || { echo "prompt failed: $(tail -n 1 "$out/prompt.log")"; exit 1; }
}

# make_weights VARIANT: the official model with seeded random weights in $w/model.pt and its
# conversion in $w/VARIANT.safetensors; sets `pyp` (PYTHONPATH of its package), `w` and `model`
# (what `--model` takes: the test variants, for checking the scripts on CPU, are files). The log
# is $out/VARIANT_weights.log; returns 1 on failure.
make_weights() {
  local v=$1
  if [ "${v#edgetam}" != "$v" ]; then pyp=$EDGETAM_PY; else pyp=$SAM2_PY; fi
  w=$work/w_$v
  model=$v
  [ -f "tests/models/$v.json" ] && model=tests/models/$v.json
  PYTHONPATH=$pyp "$PY" "$SPEED" weights --variant "$v" --out "$w" > "$out/${v}_weights.log" 2>&1 \
    && "$BIN" convert "$w/model.pt" --model "$model" -o "$w/$v.safetensors" \
      >> "$out/${v}_weights.log" 2>&1
}
