#!/usr/bin/env bash
# Bad inputs against the built binary, as a new user would make them (CPU, tiny demo split).
# Prints a Markdown table: case, exit code, stderr's first `error:` line, else its last line
# (docs/reliability.md).
#
# Usage: bash tests/faults/bad_inputs.sh [WORKDIR]   (VOSBENCH=path/to/vosbench)
set -u
BIN=${VOSBENCH:-target/debug/vosbench}
W=${1:-$(mktemp -d /tmp/vosbench_bad.XXXXXX)}
V=$(pwd)/tests/models/edgetam_test.json
C=(bench --random-weights --max-clip-frames 4 --warmup-frames 1 --quiet)
M=(--models "${V}_points")
I=(--imgsz 256)
D=(--device cpu)
B=("${C[@]}" "${M[@]}" "${I[@]}" "${D[@]}")
mkdir -p "$W"
"$BIN" synth --out "$W/split" --videos 2 --frames 8 --size 160x120 --objects 2 >/dev/null 2>&1 || {
  echo "synth failed"; exit 1; }
S=$W/split
# A finished setup and run to break things in.
"$BIN" "${B[@]}" --split-dir "$S" --out-dir "$W/good" >/dev/null 2>&1 || { echo "good run failed"; exit 1; }
echo "| case | exit | message |"
echo "|---|---|---|"
row() { # row CASE ARGS...
  local what=$1; shift
  local err; err=$("$BIN" "$@" 2>&1 >/dev/null); local rc=$?
  local last; last=$( (printf '%s\n' "$err" | grep -m1 -E '^(error|split problem):' || printf '%s\n' "$err" | grep . | tail -n1) | sed "s#$W#W#g; s#$(pwd)/##g; s#|#\\\\|#g")
  echo "| $what | $rc | \`$last\` |"
}
row "no --split-dir, no --demo" "${B[@]}"
row "missing split folder" "${B[@]}" --split-dir "$W/nope" --out-dir "$W/o"
row "folder that is not a split" "${B[@]}" --split-dir "$W" --out-dir "$W/o"
row "unknown --split-name" "${B[@]}" --split-dir "$S" --split-name sav_vall --out-dir "$W/o"
row "unknown model" "${C[@]}" "${I[@]}" "${D[@]}" --split-dir "$S" --models sam9_points --out-dir "$W/o"
row "unknown prompt type" "${C[@]}" "${I[@]}" "${D[@]}" --split-dir "$S" --models edgetam_mask --out-dir "$W/o"
row "empty --models" "${C[@]}" "${I[@]}" "${D[@]}" --split-dir "$S" --models , --out-dir "$W/o"
row "--imgsz not a multiple of 32" "${C[@]}" "${M[@]}" "${D[@]}" --split-dir "$S" --imgsz 300 --out-dir "$W/o"
row "--imgsz 0" "${C[@]}" "${M[@]}" "${D[@]}" --split-dir "$S" --imgsz 0 --out-dir "$W/o"
row "EdgeTAM --imgsz 128" "${C[@]}" "${D[@]}" --split-dir "$S" --models edgetam_points --imgsz 128 --out-dir "$W/o"
row "EdgeTAM --imgsz 288" "${C[@]}" "${D[@]}" --split-dir "$S" --models edgetam_points --imgsz 288 --out-dir "$W/o"
row "unknown precision" "${B[@]}" --split-dir "$S" --precision f64 --out-dir "$W/o"
row "bf16 on CPU" "${B[@]}" --split-dir "$S" --precision bf16 --out-dir "$W/o"
row "bad device" "${C[@]}" "${M[@]}" "${I[@]}" --split-dir "$S" --device gpu --out-dir "$W/o"
row "CUDA device in a CPU build" "${C[@]}" "${M[@]}" "${I[@]}" --split-dir "$S" --device cuda:0 --out-dir "$W/o"
row "negative --workspace-mb" "${B[@]}" --split-dir "$S" --workspace-mb -5 --out-dir "$W/o"
row "text for a number" "${B[@]}" --split-dir "$S" --limit-videos two --out-dir "$W/o"
row "--max-frames-in-mem 0" "${B[@]}" --split-dir "$S" --max-frames-in-mem 0 --out-dir "$W/o"
row "budget below the process" "${B[@]}" --split-dir "$S" --mem-budget-mb 1 --out-dir "$W/o"
row "bad --memory-fence" "${B[@]}" --split-dir "$S" --memory-fence neck,sometimes --out-dir "$W/o"
row "bad --cuda-graph" "${B[@]}" --split-dir "$S" --cuda-graph sometimes --out-dir "$W/o"
row "bad --click" "${B[@]}" --split-dir "$S" --click middle --out-dir "$W/o"
row "--demo-frames 0" "${B[@]}" --demo --demo-frames 0 --out-dir "$W/o"
row "--demo-videos 0" "${B[@]}" --demo --demo-videos 0 --out-dir "$W/o"
row "--demo-size 10x10" "${B[@]}" --demo --demo-size 10x10 --out-dir "$W/o"
row "--demo-size 320by240" "${B[@]}" --demo --demo-size 320by240 --out-dir "$W/o"
row "missing weights (no --random-weights)" bench --device cpu --models "${V}_points" --imgsz 256 --quiet --split-dir "$S" --weights-dir "$W/noweights" --out-dir "$W/o"
mkdir -p "$W/foreign"; echo "a,b" > "$W/foreign/vosbench_summary.csv"
row "foreign CSV in --out-dir" "${B[@]}" --split-dir "$S" --out-dir "$W/foreign"
touch "$W/afile"
row "--out-dir under a file" "${B[@]}" --split-dir "$S" --out-dir "$W/afile/o"
row "--preprocessed-dir is a file" "${B[@]}" --split-dir "$S" --out-dir "$W/o" --preprocessed-dir "$W/afile"
row "--skip-setup without a setup" "${B[@]}" --skip-setup --split-dir "$S" --out-dir "$W/o"
cp -r "$W/good/preprocessed" "$W/pre_bad"
echo '{' > "$W/pre_bad/inference_config.json"
row "truncated inference_config.json" "${B[@]}" --skip-setup --split-dir "$S" --preprocessed-dir "$W/pre_bad" --out-dir "$W/o"
cp -r "$W/good/preprocessed" "$W/pre_trunc"
for f in "$W/pre_trunc/frames/"*.vfc; do head -c 1000 "$f" > "$f.x"; mv "$f.x" "$f"; done
# metadata.json names its caches by path: point it at the truncated copies
sed -i "s#$W/good/preprocessed#$W/pre_trunc#g" "$W/pre_trunc/metadata.json"
row "truncated frame caches + --skip-setup (rows in error)" "${B[@]}" --skip-setup --split-dir "$S" --preprocessed-dir "$W/pre_trunc" --out-dir "$W/o_trunc"
cp -r "$S" "$W/split_bad"
printf 'not a png' > "$W/split_bad/Annotations_6fps/synth_000/000/00000.png"
row "broken first annotation, --strict" "${B[@]}" --split-dir "$W/split_bad" --strict --out-dir "$W/o"
row "broken first annotation (problem line, runs)" bench --random-weights --device cpu --models "${V}_points" --imgsz 256 --max-clip-frames 4 --split-dir "$W/split_bad" --out-dir "$W/o_bad" --skip-inference
cp -r "$S" "$W/split_jpeg"
printf 'junk' > "$W/split_jpeg/JPEGImages_24fps/synth_001/00003.jpg"
row "corrupt JPEG frame (video left out, runs)" bench --random-weights --device cpu --models "${V}_points" --imgsz 256 --max-clip-frames 4 --split-dir "$W/split_jpeg" --out-dir "$W/o_jpeg" --skip-inference
