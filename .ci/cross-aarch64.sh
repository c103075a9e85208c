#!/usr/bin/env bash
# CI: the crate must build for aarch64 Linux (Jetson Orin's CPU), the CPU features at least.
# Installs Debian's cross compiler (C parts of dependencies such as ring need it even for a
# check) and the rustup target, then type-checks the library, the binary and the tests for
# aarch64-unknown-linux-gnu. A check, not a build: it catches every aarch64 compile break
# (cfg(target_arch) code, pointer-width and libc differences) without linking, which keeps CI
# short. The CUDA features need the JetPack toolkit and are built on the board (docs/jetson.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
TARGET=aarch64-unknown-linux-gnu
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  else
    echo "cross-aarch64: no aarch64-linux-gnu-gcc and no apt-get to install it" >&2
    exit 1
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  rustup target add "$TARGET" >/dev/null
fi
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
echo "== cargo check --target $TARGET --all-targets"
cargo check --target "$TARGET" --all-targets
