#!/usr/bin/env bash
# Submit a sharded vosbench run to Slurm: the setup job, an array of VOSBENCH_SHARDS inference
# tasks that starts when setup succeeded, and a merge job that starts when every task succeeded.
# Prints the three job ids. docs/cluster.md explains the variables and how to resume.
#
#   VOSBENCH=/opt/vosbench/vosbench VOSBENCH_RUN=/shared/runs/sav_val VOSBENCH_SHARDS=8 \
#   VOSBENCH_ARGS="--split-dir /shared/sav_val --models sam2.1_tiny_points,edgetam_points --precision bf16" \
#   scripts/slurm/submit.sh
#
# VOSBENCH_GRES (default gpu:1) is each inference task's --gres; empty for a CPU-only cluster.
# VOSBENCH_SKIP_SETUP=1 reuses an earlier setup (a resubmission after failed tasks).
# VOSBENCH_SBATCH_ARGS: extra sbatch options for all three jobs (partition, account, ...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${VOSBENCH:?path of the vosbench binary}" "${VOSBENCH_RUN:?run folder (shared by all nodes)}"
: "${VOSBENCH_SHARDS:?number of shards}"
export VOSBENCH VOSBENCH_RUN VOSBENCH_SHARDS VOSBENCH_ARGS="${VOSBENCH_ARGS:-}"
gres="${VOSBENCH_GRES-gpu:1}"
read -r -a extra <<< "${VOSBENCH_SBATCH_ARGS:-}"
mkdir -p "$VOSBENCH_RUN/logs"
cd "$VOSBENCH_RUN/logs"
dep=()
if [[ "${VOSBENCH_SKIP_SETUP:-0}" != 1 ]]; then
  setup=$(sbatch --parsable --export=ALL "${extra[@]}" "$here/setup.sbatch")
  echo "setup job $setup"
  dep=(--dependency="afterok:$setup")
fi
shards=$(sbatch --parsable --export=ALL "${extra[@]}" "${dep[@]}" ${gres:+--gres="$gres"} \
  --array="0-$((VOSBENCH_SHARDS - 1))" "$here/shard.sbatch")
echo "shard array job $shards"
merge=$(sbatch --parsable --export=ALL "${extra[@]}" --dependency="afterok:$shards" \
  "$here/merge.sbatch")
echo "merge job $merge"
