#!/usr/bin/env bash
# Run one vosbench fuzz target: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]
#
# Stable toolchain: cargo-fuzz passes nightly-only flags, which RUSTC_BOOTSTRAP=1 allows.
# Without a sanitizer (-s none): the targets' own allocator aborts on any allocation above
# VOSBENCH_FUZZ_MALLOC_LIMIT_MB (default 512), -rss_limit_mb catches slow growth, -timeout hangs.
# The working corpus is fuzz/corpus/TARGET (ignored by git), started from fuzz/seeds/TARGET;
# crashers land in fuzz/artifacts/TARGET. VOSBENCH_FUZZ_SANITIZER=address for an ASan build.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags]}
secs=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
case "$target" in
  hf_layout) max_len=2048 ;;      # names only; long inputs only slow the regrouping
  jpeg|pt_reader|safetensors|png_mask|frame_cache) max_len=65536 ;;
  *) max_len=16384 ;;
esac
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
dict=()
[ -f "fuzz/dicts/$target.dict" ] && dict=("-dict=fuzz/dicts/$target.dict")
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s "${VOSBENCH_FUZZ_SANITIZER:-none}" "$target"
# the binary itself, not `cargo fuzz run`: after a crash that one starts a debug `cargo run` of
# the whole crate just to print the input
host=$(rustc -vV | sed -n 's/^host: //p')
exec "fuzz/target/$host/release/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -max_len="$max_len" -print_final_stats=1 \
  -artifact_prefix="fuzz/artifacts/$target/" "${dict[@]}" "$@"
