#!/usr/bin/env bash
# Configures and builds dqe. Usage: scripts/setup/build.sh BUILD_DIR [cmake options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
