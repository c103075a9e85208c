#!/usr/bin/env bash
# Kill soak of `vosbench bench` on the CPU demo (docs/reliability.md, "Kill soak").
#
# A clean run first; then the same command run again and again into another out-dir while
# processes are killed with SIGKILL at random moments: the setup phase twice, the inference
# process 20 times, then the launcher once (its inference process notices and stops itself, see
# bench::launch::exit_with_parent); after each kill the
# command is simply run again. At the end the soak's CSV must hold every key exactly once, every
# row that was finished before a kill must be byte-identical in the final CSV, J&F must equal
# the clean run's for every key, and no temp file may remain.
#
# The launcher runs each phase as a child process (VOSBENCH_PHASE=setup / inference in its
# environment); "the setup process" and "the inference process" below are those children.
#
# Usage: bash tests/faults/kill_soak.sh [WORKDIR]
#        (VOSBENCH=path/to/vosbench, SEED=n, KILL_MAX_MS=latest inference kill, default 15000,
#         VIDEOS=demo videos, default 6: 4 rows each)
set -u
BIN=${VOSBENCH:-target/debug/vosbench}
W=${1:-$(mktemp -d /tmp/vosbench_soak.XXXXXX)}
SEED=${SEED:-1}
RANDOM=$SEED
V=$(pwd)/tests/models/edgetam_test.json
ARGS=(bench --demo --random-weights --device cpu --models "${V}_points,${V}_bbox" --imgsz 256
      --demo-videos "${VIDEOS:-6}" --demo-frames 12 --demo-size 160x120 --warmup-frames 2 --quiet)
mkdir -p "$W"
log() { echo "[$(date +%T)] $*"; }

log "clean run into $W/clean (a finished one there is reused)"
"$BIN" "${ARGS[@]}" --out-dir "$W/clean" || { log "clean run failed"; exit 1; }
OUT=$W/soak
CSV=$OUT/vosbench_summary.csv
SNAP=$W/snapshots
mkdir -p "$SNAP"
kills=0; setup_kills=0; launcher_kills=0; infer_kills=0; runs=0

snapshot() { [ -f "$CSV" ] && cp "$CSV" "$SNAP/$(printf %03d "$kills").csv"; }

# The child of launcher $1 that runs phase $2 (setup or inference); empty if none runs now.
child_of() {
  local c
  for c in $(pgrep -P "$1"); do
    { tr '\0' '\n' < "/proc/$c/environ"; } 2>/dev/null | grep -qx "VOSBENCH_PHASE=$2" && { echo "$c"; return; }
  done
}

sleep_ms() { sleep "$(awk -v m="$1" 'BEGIN{printf "%.3f", m/1000}')"; }

while :; do
  runs=$((runs + 1))
  "$BIN" "${ARGS[@]}" --out-dir "$OUT" 2>>"$W/soak.stderr" &
  L=$!
  if [ "$setup_kills" -lt 2 ]; then
    # The setup process, 0.3 to 2.3 s after it started.
    S=""
    while kill -0 "$L" 2>/dev/null; do
      S=$(child_of "$L" setup); [ -n "$S" ] && break; sleep 0.02
    done
    sleep_ms $((300 + RANDOM % 2000))
    if [ -n "$S" ] && kill -9 "$S" 2>/dev/null; then
      wait "$L"; rc=$?
      setup_kills=$((setup_kills + 1)); kills=$((kills + 1)); snapshot
      log "kill $kills: setup process $S (launcher rc $rc)"
      continue
    fi
  fi
  # Wait for the inference child.
  C=""
  while kill -0 "$L" 2>/dev/null; do
    C=$(child_of "$L" inference); [ -n "$C" ] && break; sleep 0.02
  done
  if [ -z "$C" ]; then wait "$L"; rc=$?; log "run $runs ended (rc $rc) without an inference phase"; break; fi
  # The launcher last: its inference process stops itself within 50 ms (exit_with_parent).
  if [ "$launcher_kills" -lt 1 ] && [ "$infer_kills" -ge 20 ]; then
    sleep_ms $((200 + RANDOM % 1500))
    if kill -0 "$L" 2>/dev/null; then
      kill -9 "$L"; wait "$L" 2>/dev/null
      launcher_kills=$((launcher_kills + 1)); kills=$((kills + 1))
      log "kill $kills: launcher $L (its inference process $C stops on its own)"
      while kill -0 "$C" 2>/dev/null; do sleep 0.1; done
      snapshot
      continue
    fi
  fi
  if [ "$infer_kills" -lt 20 ]; then
    # Anywhere in the inference phase: model load, mid-row, between rows, CSV rewrite. The
    # window (KILL_MAX_MS) must exceed the model load plus a few rows, or no row ever finishes
    # before a kill.
    sleep_ms $(( (RANDOM * 32768 + RANDOM) % ${KILL_MAX_MS:-15000} ))
    if kill -0 "$C" 2>/dev/null; then
      kill -9 "$C"; wait "$L"; rc=$?
      infer_kills=$((infer_kills + 1)); kills=$((kills + 1)); snapshot
      log "kill $kills: inference process $C (launcher rc $rc)"
      continue
    fi
  fi
  wait "$L"; rc=$?
  log "run $runs finished with rc $rc"
  [ "$rc" -eq 0 ] && [ "$infer_kills" -ge 20 ] && [ "$launcher_kills" -ge 1 ] && break
  if [ "$rc" -eq 0 ]; then
    log "the CSV completed before every kill was made; start the soak again with more videos"
    break
  fi
done
log "kills: setup $setup_kills, launcher $launcher_kills, inference $infer_kills; runs $runs"

python3 - "$W/clean/vosbench_summary.csv" "$CSV" "$SNAP" "$OUT" <<'PY'
import csv, glob, os, re, sys
clean, final, snaps, out = sys.argv[1:5]
def rows(p):
    with open(p, newline="") as f:
        return list(csv.DictReader(f))
def lines(p):
    with open(p) as f:
        return f.read().splitlines()[1:]
c, s = rows(clean), rows(final)
key = lambda r: (r["video"], r["object"], r["model"])
keys = [key(r) for r in s]
ok = True
def check(cond, msg):
    global ok
    print(("PASS " if cond else "FAIL ") + msg)
    ok &= cond
check(len(keys) == len(set(keys)), f"every key once ({len(keys)} rows, {len(set(keys))} keys)")
check(set(keys) == {key(r) for r in c}, f"same keys as the clean run ({len(c)})")
check(all(r["status"] == "ok" for r in s), "every row ok")
final_lines = set(lines(final))
kept = 0
for snap in sorted(glob.glob(os.path.join(snaps, "*.csv"))):
    for l in lines(snap):
        kept += 1
        check(l in final_lines, f"{os.path.basename(snap)}: row kept byte-identical") if l not in final_lines else None
check(True, f"{kept} rows finished before a kill, all byte-identical in the final CSV") if ok else None
cj = {key(r): r["JandF"] for r in c}
same = sum(cj[key(r)] == r["JandF"] for r in s)
check(same == len(s), f"J&F equal to the clean run's for {same} of {len(s)} rows")
# temp names end in .tmp and the writer's pid (vosbench_summary.csv.tmp1234)
tmp = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if re.search(r"\.tmp\d*$", f)]
check(not tmp, f"no temp files left ({tmp})")
sys.exit(0 if ok else 1)
PY
