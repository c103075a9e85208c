#!/usr/bin/env bash
# Disk-full and read-only folders for `vosbench bench` (docs/reliability.md, "Disk full and
# read-only"). Needs root (mounts small tmpfs file systems under WORKDIR; unmounts them at exit).
# Each case prints the exit code and stderr's last line, then PASS/FAIL of its checks: a one-line
# error, the previous results intact, no partial (*.tmp) files.
#
# Usage: sudo bash tests/faults/disk_full.sh [WORKDIR]   (VOSBENCH=path/to/vosbench)
set -u
IMG=256
BIN=${VOSBENCH:-target/debug/vosbench}
W=${1:-$(mktemp -d /tmp/vosbench_disk.XXXXXX)}
V=$(pwd)/tests/models/edgetam_test.json
ARGS=(bench --demo --random-weights --device cpu --models "${V}_points"
      --demo-videos 2 --demo-frames 48 --demo-size 160x120 --max-clip-frames 6 --warmup-frames 2 --quiet)
mkdir -p "$W"
MOUNTS=()
cleanup() { for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done; }
trap cleanup EXIT
mnt() { mkdir -p "$2"; mount -t tmpfs -o "size=$1" tmpfs "$2" && MOUNTS+=("$2"); }
fill() { dd if=/dev/zero of="$1/filler" bs=64k 2>/dev/null; sync; }
fails=0
check() { if eval "$1"; then echo "  PASS $2"; else echo "  FAIL $2"; fails=$((fails + 1)); fi; }
run() { # run the command, keep rc and stderr
  "$BIN" "$@" 2>"$W/err"; rc=$?
  echo "  rc $rc: $(tail -n1 "$W/err")"
}
no_tmp() { [ -z "$(find "$@" -name '*.tmp' -o -name '*.tmp[0-9]*' 2>/dev/null)" ]; }  # name.tmp<pid>
one_line() { [ "$(grep -c . "$W/err")" -eq 1 ]; }

echo "setup: a good run on the normal disk"
"$BIN" "${ARGS[@]}" --imgsz $IMG --out-dir "$W/good" || exit 1
GOOD=$W/good/vosbench_summary.csv

echo "1. out-dir on a full tmpfs (256 KiB) holding the previous CSV, one row removed to redo"
mnt 256k "$W/full_out"
head -n -1 "$GOOD" > "$W/full_out/vosbench_summary.csv"
cp "$W/full_out/vosbench_summary.csv" "$W/prev.csv"
fill "$W/full_out"
run "${ARGS[@]}" --imgsz $IMG --skip-setup --preprocessed-dir "$W/good/preprocessed" --out-dir "$W/full_out"
check '[ $rc -eq 2 ] && one_line' "exit 2, one line"
check 'grep -q "No space left on device" "$W/err"' "says the disk is full"
check 'cmp -s "$W/prev.csv" "$W/full_out/vosbench_summary.csv"' "previous CSV byte-identical"
check 'no_tmp "$W/full_out"' "no temp files"

echo "2. preprocessed dir on a tmpfs too small for the frame cache (8 MiB)"
mnt 8m "$W/small_pre"
run "${ARGS[@]}" --imgsz $IMG --out-dir "$W/o2" --preprocessed-dir "$W/small_pre/pre"
check '[ $rc -eq 2 ] && one_line' "exit 2, one line"
check 'grep -q "the frame cache needs" "$W/err"' "checked before writing"
check '[ -z "$(ls -A "$W/small_pre")" ] && [ ! -e "$W/o2" ]' "nothing created (the demo split neither)"

echo "3. the preprocessed dir's disk fills while a cache is written"
mnt 200m "$W/pre"
"$BIN" "${ARGS[@]}" --imgsz $IMG --skip-inference --out-dir "$W/o3" --preprocessed-dir "$W/pre/p" || exit 1
cp "$W/pre/p/metadata.json" "$W/meta.json"; cp "$W/pre/p/inference_config.json" "$W/cfg.json"
( for _ in $(seq 1 2000); do
    if ls "$W/pre/p/frames/"*.s512.vfc.tmp* >/dev/null 2>&1; then fill "$W/pre"; break; fi
    sleep 0.005
  done ) &
F=$!
run "${ARGS[@]}" --imgsz 512 --skip-inference --out-dir "$W/o3" --preprocessed-dir "$W/pre/p"
wait $F
check '[ $rc -eq 2 ] && one_line' "exit 2, one line"
check 'grep -q "No space left on device\|the frame cache needs" "$W/err"' "says the disk is full"
check 'cmp -s "$W/meta.json" "$W/pre/p/metadata.json" && cmp -s "$W/cfg.json" "$W/pre/p/inference_config.json"' "previous setup intact"
check 'no_tmp "$W/pre"' "no temp files"
rm -f "$W/pre/filler"
run "${ARGS[@]}" --imgsz $IMG --skip-setup --out-dir "$W/o3" --preprocessed-dir "$W/pre/p"
check '[ $rc -eq 0 ]' "phase B still runs on the previous setup"

echo "4. read-only out-dir holding the previous CSV"
mnt 1m "$W/ro_out"
cp "$GOOD" "$W/ro_out/"
mount -o remount,ro "$W/ro_out"
run "${ARGS[@]}" --imgsz $IMG --out-dir "$W/ro_out" --preprocessed-dir "$W/o4pre"
check '[ $rc -eq 2 ] && one_line' "exit 2, one line"
check 'grep -q "not writable" "$W/err"' "names the folder"
check 'cmp -s "$GOOD" "$W/ro_out/vosbench_summary.csv" && [ ! -e "$W/o4pre" ]' "CSV intact, nothing created"

echo "5. read-only preprocessed dir (a finished setup)"
mnt 100m "$W/ro_pre"
"$BIN" "${ARGS[@]}" --imgsz $IMG --skip-inference --out-dir "$W/o5" --preprocessed-dir "$W/ro_pre/p" || exit 1
mount -o remount,ro "$W/ro_pre"
run "${ARGS[@]}" --imgsz $IMG --out-dir "$W/o5" --preprocessed-dir "$W/ro_pre/p"
check '[ $rc -eq 2 ] && one_line && grep -q "not writable" "$W/err"' "setup refused: exit 2, one line"
check '[ ! -e "$W/o5/vosbench_summary.csv" ]' "no results written"
run "${ARGS[@]}" --imgsz $IMG --skip-setup --out-dir "$W/o5" --preprocessed-dir "$W/ro_pre/p"
check '[ $rc -eq 0 ] && [ -f "$W/o5/vosbench_summary.csv" ]' "phase B runs from it"

echo "failed checks: $fails"
exit $((fails > 0))
