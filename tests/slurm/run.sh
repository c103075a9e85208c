#!/usr/bin/env bash
# The Slurm array scripts (scripts/slurm/) on a real single-node Slurm: as root, install
# slurm-wlm and munge with apt-get if they are missing, start munged, slurmctld and slurmd on
# localhost (every file in one temp folder; nothing of the system's configuration is used or
# changed), submit the sharded benchmark on the CPU demo split (random weights, small imgsz)
# with scripts/slurm/submit.sh, wait, and check that the merged CSV has exactly the keys of a
# single-process run on the same setup, with identical J, F and J&F. Everything it started is
# stopped at the end, pass or fail.
#
#   sudo tests/slurm/run.sh            (builds the debug binary if target/debug/vosbench is missing)
#
# VOSBENCH_SLURM_SHARDS (default 3): array size. VOSBENCH_SLURM_GRES_CONF: a GresTypes/Gres
# line for slurm.conf (empty here: the CPU test asks for no GPU); VOSBENCH_GRES is passed on
# to submit.sh (empty by default here).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
shards="${VOSBENCH_SLURM_SHARDS:-3}"
[[ $(id -u) == 0 ]] || { echo "tests/slurm/run.sh: run as root (it starts munged, slurmctld, slurmd)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v python3 >/dev/null; then
  echo "== installing slurm-wlm, munge and python3 (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge python3 >/dev/null
fi
bin="$repo/target/debug/vosbench"
if [[ ! -x "$bin" ]]; then
  echo "== cargo build (debug)"
  (cd "$repo" && cargo build --bin vosbench)
fi

t="$(mktemp -d /tmp/vosbench-slurm.XXXXXX)"
chmod 0700 "$t"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $rc != 0 ]]; then
    echo "== FAILED (rc $rc); logs:" >&2
    tail -n 20 "$t"/*.log "$t"/run/logs/*.out >&2 2>/dev/null || true
  fi
  rm -rf "$t"
  exit $rc
}
trap cleanup EXIT

echo "== munged (socket $t/munge.sock)"
dd if=/dev/urandom of="$t/munge.key" bs=1024 count=1 status=none
chmod 0400 "$t/munge.key"
munged --foreground --force --key-file="$t/munge.key" --socket="$t/munge.sock" \
  --pid-file="$t/munged.pid" --log-file="$t/munged.log" --seed-file="$t/munge.seed" >"$t/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S "$t/munge.sock" ]] && break; sleep 0.1; done
[[ -S "$t/munge.sock" ]] || { echo "munged did not start" >&2; exit 1; }

host="$(hostname -s)"
cpus="$(nproc)"
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p "$t/state" "$t/spool"
cat > "$t/slurm.conf" <<EOF
ClusterName=vosbenchtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$t/munge.sock
CredType=cred/munge
StateSaveLocation=$t/state
SlurmdSpoolDir=$t/spool
SlurmctldPidFile=$t/slurmctld.pid
SlurmdPidFile=$t/slurmd.pid
SlurmctldLogFile=$t/slurmctld.log
SlurmdLogFile=$t/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
MinJobAge=600
${VOSBENCH_SLURM_GRES_CONF:-}
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$t/slurm.conf"
echo "== slurmctld + slurmd ($host, $cpus CPUs)"
slurmctld -D -i >"$t/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D >"$t/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
  [[ "$state" == idle ]] && break
  sleep 0.3
done
sinfo
[[ "$state" == idle ]] || { echo "the node did not become idle ($state)" >&2; exit 1; }

run="$t/run"
variant="$repo/tests/models/edgetam_test.json"
args="--demo --random-weights --device cpu --models ${variant}_points,${variant}_bbox --imgsz 256"
args+=" --demo-videos 3 --demo-frames 10 --demo-size 160x120 --limit-objects 1"
args+=" --warmup-frames 2 --quiet"
echo "== submit: setup, array of $shards shards, merge"
submitted="$(VOSBENCH="$bin" VOSBENCH_RUN="$run" VOSBENCH_SHARDS="$shards" VOSBENCH_ARGS="$args" \
  VOSBENCH_GRES="${VOSBENCH_GRES-}" VOSBENCH_SBATCH_ARGS="--cpus-per-task=1" \
  "$repo/scripts/slurm/submit.sh")"
echo "$submitted"
merge_job="$(awk '/merge job/ {print $3}' <<< "$submitted")"
deadline=$((SECONDS + 1200))
while squeue -h 2>/dev/null | grep -q .; do
  (( SECONDS < deadline )) || { squeue; echo "jobs still queued after 20 min" >&2; exit 1; }
  if squeue -h -o '%r' | grep -q DependencyNeverSatisfied; then
    squeue; echo "a job failed, so the merge can never start" >&2; exit 1
  fi
  sleep 2
done
scontrol show job "$merge_job" | grep -o 'JobState=[A-Z]*'
scontrol show job "$merge_job" | grep -q 'JobState=COMPLETED' || { echo "the merge job did not complete" >&2; exit 1; }
cat "$run"/logs/vosbench-merge-*.out

echo "== one process on the same setup"
read -r -a a <<< "$args"
"$bin" bench "${a[@]}" --skip-setup --preprocessed-dir "$run/preprocessed" --out-dir "$run/single"

echo "== compare"
python3 - "$run/merged/vosbench_summary.csv" "$run/single/vosbench_summary.csv" "$shards" <<'EOF'
import csv, sys
def rows(p):
    with open(p, newline="") as f:
        return {(r["video"], r["object"], r["model"]): (r["J"], r["F"], r["JandF"], r["status"])
                for r in csv.DictReader(f)}
merged, single, n = rows(sys.argv[1]), rows(sys.argv[2]), int(sys.argv[3])
assert set(merged) == set(single), f"keys differ: {set(merged) ^ set(single)}"
assert merged == single, {k: (merged[k], single[k]) for k in merged if merged[k] != single[k]}
assert all(v[3] == "ok" for v in merged.values()), merged
assert all(v[2] != "" for v in merged.values()), f"every row has a J&F: {merged}"
print(f"merged CSV of {n} array tasks: {len(merged)} keys, the same keys and J, F, J&F as one process")
EOF
python3 - "$run/merged/summary.json" "$shards" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
assert s["shards"] == n and len(s["merged_from"]) == n, s
pids = [p for m in s["merged_from"] for p in m["inference_pids"]]
print(f"summary.json: {s['rows']} rows from {n} shards, inference pids {pids}")
EOF
echo "== PASS"
