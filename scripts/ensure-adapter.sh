#!/usr/bin/env bash
# Makes sure wgpu finds an adapter. On Linux, where Vulkan is the backend this crate prefers,
# it makes sure a Vulkan adapter exists: on a machine with none (no GPU driver, or only GL),
# it installs Mesa's software drivers from Debian/Ubuntu packages: lavapipe (Vulkan) and
# llvmpipe through EGL (GL). Run by scripts/test (`ensure-adapter.sh test`: builds the tests,
# whose build the test run then reuses) and scripts/bench (`ensure-adapter.sh bench`: builds
# the release binary).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-test}" = bench ]; then
  cargo build --quiet --locked --release --bin wgpu-lstm
  bin=target/release/wgpu-lstm
else
  cargo test --locked --no-run
  bin=target/debug/wgpu-lstm
fi

# The adapter(s) this machine needs: a Vulkan one on Linux, any elsewhere.
have_adapter() {
  if [ "$(uname -s)" = Linux ]; then
    "$bin" info --backend vulkan >/dev/null 2>&1
  else
    "$bin" info >/dev/null 2>&1
  fi
}

if have_adapter; then
  "$bin" info 2>/dev/null | grep '^adapter' || true
  exit 0
fi

if [ "$(uname -s)" = Linux ]; then
  echo "wgpu found no Vulkan adapter: installing Mesa's software Vulkan/GL drivers" >&2
else
  echo "error: wgpu found no adapter; install a Metal, DX12, Vulkan or GL driver" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  if "$bin" info >/dev/null 2>&1; then
    echo "warning: no apt-get to install a Vulkan driver; continuing with the adapters found" >&2
    "$bin" info 2>/dev/null | grep '^adapter' || true
    exit 0
  fi
  echo "error: no adapter and no apt-get; install a Vulkan, Metal, DX12 or GL driver" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
  mesa-vulkan-drivers libegl1 libgl1-mesa-dri >/dev/null
"$bin" info 2>/dev/null | grep '^adapter'
