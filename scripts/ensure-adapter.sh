#!/usr/bin/env bash
# Makes sure wgpu finds at least one adapter. On a machine without one (no GPU driver), installs
# Mesa's software drivers from Debian/Ubuntu packages: lavapipe (Vulkan) and llvmpipe through
# EGL (GL). Run by scripts/test (`ensure-adapter.sh test`: builds the tests, whose build the
# test run then reuses) and scripts/bench (`ensure-adapter.sh bench`: builds the release
# binary).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-test}" = bench ]; then
  cargo build --quiet --locked --release --bin wgpu-lstm
  bin=target/release/wgpu-lstm
else
  cargo test --locked --no-run
  bin=target/debug/wgpu-lstm
fi
if "$bin" info >/dev/null 2>&1; then
  "$bin" info 2>/dev/null | grep '^adapter' || true
  exit 0
fi

echo "wgpu found no adapter: installing Mesa's software Vulkan/GL drivers" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no adapter and no apt-get; install a Vulkan, Metal, DX12 or GL driver" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
  mesa-vulkan-drivers libegl1 libgl1-mesa-dri >/dev/null
"$bin" info 2>/dev/null | grep '^adapter'
