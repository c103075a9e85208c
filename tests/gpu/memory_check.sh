#!/usr/bin/env bash
# Where vosbench's device memory peak is made, and what pool settings do to it, on the GPU
# machine: `vosbench track` on the synthetic video of speed_vs_torch.sh, once per (variant,
# precision, setting), no PyTorch rows. Each run's --timing JSON has the pool after every frame
# (`device_pool_per_frame`); the profiled run's log ends with the stage table whose last two
# columns say which stages raised the pool's reserved and live peaks.
#
# There (device run, carry .gpu and .pyref):
#   bash tests/gpu/memory_check.sh [VARIANT...]        (default: sam2.1_hiera_tiny)
# Settings (environment): MODES ("f32 f32-tf32"), SETTINGS (space-separated NAME=ITEM,ITEM...
#   entries, "base=" for none; an ITEM starting with -- is a `vosbench track` flag, anything else
#   an environment variable for it, e.g. "off=--memory-fence=off trunk=--memory-fence=trunk
#   unfused=VOSBENCH_ATTENTION=unfused"), PROFILE_SETTING (the setting also run once with
#   VOSBENCH_PROFILE=1; default base), FRAMES (64), SIZE (854x480),
#   DEVICE (cuda), PYTHON (python3), VOSBENCH (.gpu/vosbench), MASKS (set: write the masks and
#   compare every setting's PNGs with the first setting's, per variant and mode). On CPU (checking the script:
#   DEVICE=cpu VOSBENCH=target/release/vosbench ... sam2.1_test) the memory columns are blank.
# Results in $OUT (or /tmp/memory_out): JSON and log per run, summary.txt.
set -uo pipefail
out=${OUT:-/tmp/memory_out}
work=${WORK:-/tmp/memory_work}
source tests/gpu/speed_common.sh
MODES=${MODES:-f32 f32-tf32}
SETTINGS=${SETTINGS:-base=}
PROFILE_SETTING=${PROFILE_SETTING:-base}
[ $# -gt 0 ] || set -- sam2.1_hiera_tiny

make_video

for v in "$@"; do
  if ! make_weights "$v"; then
    echo "$v: weights failed: $(tail -n 1 "$out/${v}_weights.log")"
    continue
  fi
  for m in $MODES; do
    flags=()
    [ "$m" = f32-tf32 ] && flags=(--tf32)
    for s in $SETTINGS; do
      name=${s%%=*}
      envs=() sflags=() toks=()
      IFS=, read -r -a toks <<< "${s#*=}"
      for tok in "${toks[@]}"; do
        case $tok in --*) sflags+=("$tok") ;; ?*) envs+=("$tok") ;; esac
      done
      runs=("$name")
      [ "$name" = "$PROFILE_SETTING" ] && runs+=("$name-profile")
      for r in "${runs[@]}"; do
        extra=()
        [ "$r" != "$name" ] && extra=(VOSBENCH_PROFILE=1)
        json=$out/${v}_${m}_$r.json
        masks=(--no-masks)
        [ -n "${MASKS:-}" ] && masks=(--out "$work/masks/${v}_${m}_$r")
        env ${envs[@]+"${envs[@]}"} ${extra[@]+"${extra[@]}"} "$BIN" track --model "$model" --weights "$w/$v.safetensors" \
          --frames "$frames" --point "$point" --device "$DEVICE" --precision "${m%-tf32}" ${flags[@]+"${flags[@]}"} \
          ${sflags[@]+"${sflags[@]}"} "${masks[@]}" --quiet --timing "$json" > "${json%.json}.log" 2>&1 \
          || echo "$v $m $r FAILED: $(tail -n 1 "${json%.json}.log")"
      done
    done
  done
  rm -rf "$w"
done

if [ -n "${MASKS:-}" ]; then
  first=${SETTINGS%% *}
  first=${first%%=*}
  for d in "$work"/masks/*_"$first"; do
    base=${d%_"$first"}
    for other in "$base"_*; do
      [ "$other" = "$d" ] && continue
      n=0 same=0
      while IFS= read -r f; do
        n=$((n + 1))
        cmp -s "$f" "$other/${f#"$d"/}" && same=$((same + 1))
      done < <(find "$d" -name '*.png' | sort)
      echo "masks ${other##*/} vs ${d##*/}: $same of $n identical"
    done
  done > "$out/masks.txt"
  cat "$out/masks.txt"
fi

"$PY" - "$out" > "$out/summary.txt" <<'EOF'
import json, sys, glob, os
mib = lambda b: b / 2**20
rows = []
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    t = json.load(open(p))
    name = os.path.basename(p)[:-5]
    s = t.get("device_pool_per_frame") or []
    if not s:
        print(f"{name}: fps {t.get('fps_steady')} (no pool figures)")
        continue
    # the frames at which the reserved peak grew, and by how much
    grow, last = [], 0
    for i, x in enumerate(s):
        if x["peak_reserved_bytes"] > last:
            grow.append(f"{i}:+{mib(x['peak_reserved_bytes'] - last):.0f}")
            last = x["peak_reserved_bytes"]
    print(f"{name}: fps {t.get('fps_steady')} peak res {mib(t['peak_device_reserved_bytes']):.0f} "
          f"live {mib(t['peak_device_alloc_bytes']):.0f} after-load {mib(t['device_alloc_after_load_bytes']):.0f} MiB; "
          f"end used/res {mib(s[-1]['used_bytes']):.0f}/{mib(s[-1]['reserved_bytes']):.0f}; "
          f"fences {t.get('memory_fences')}, graph {t.get('cuda_graph')}")
    print("   reserved-peak growth by frame:", " ".join(grow))
EOF
cat "$out/summary.txt"
for f in "$out"/*-profile.log; do echo "== $f"; tail -n 40 "$f"; done
