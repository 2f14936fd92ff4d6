#!/usr/bin/env bash
# Sets up, builds from scratch and runs every test (GoogleTest through ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup/setup.sh
rm -rf build-test
bash scripts/setup/build.sh build-test -DDQE_BUILD_TESTS=ON
(cd build-test && ctest --output-on-failure -j2)
# Faults: SIGKILL at random moments, SIGINT and SIGTERM, resume to the same metrics.
bash scripts/check/kill_test.sh build-test/dqe 20
# Hostile input: the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, then
# each libFuzzer target (JSONL reader, WordPiece, safetensors, configs) for 30 s.
bash scripts/check/asan.sh
bash scripts/check/fuzz.sh 30
