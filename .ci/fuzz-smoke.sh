#!/usr/bin/env bash
# Fuzz smoke test: build every cargo-fuzz target (fuzz/) and run each briefly on its committed
# seed corpus (crashes, hangs, allocation blow-ups fail the run). Stable toolchain only:
# cargo-fuzz's nightly flags are allowed by RUSTC_BOOTSTRAP=1, no sanitizer (-s none; the
# targets' own allocator caps single allocations). Network: crates.io only (cargo-fuzz and the
# fuzz package's dependencies).
#
#   bash .ci/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 30)
#
# The long runs behind docs/reliability.md use fuzz/run.sh TARGET SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
export RUSTC_BOOTSTRAP=1
start=$(date +%s)
cargo fuzz build -s none
echo "== fuzz targets built in $(( $(date +%s) - start )) s"
host=$(rustc -vV | sed -n 's/^host: //p')
fail=0
for t in $(cargo fuzz list); do
  work=$(mktemp -d)
  mkdir -p "$work/artifacts"
  # the seeds are read, new inputs go to a scratch corpus: the committed corpus is not touched
  # the binary itself: after a crash `cargo fuzz run` starts a debug build to print the input
  if "fuzz/target/$host/release/$t" "$work" "fuzz/seeds/$t" \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -max_len=16384 -artifact_prefix="$work/artifacts/" >"$work/log" 2>&1; then
    echo "== $t: $(grep -aE '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -1)"
    rm -rf "$work"
  else
    echo "== $t: FAILED (crasher in $work/artifacts)"
    tail -40 "$work/log"
    fail=1
  fi
done
echo "== fuzz smoke took $(( $(date +%s) - start )) s"
exit $fail
