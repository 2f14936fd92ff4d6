#!/usr/bin/env bash
# Builds the unit and CLI test executables with AddressSanitizer and UndefinedBehaviorSanitizer
# (-DDQE_SANITIZE=ON, clang-14, Debug: assertions in nlohmann/LibTorch headers stay on, and it
# compiles faster than an optimised build) in build-asan/ and runs them; any sanitizer report
# fails the run. Usage: scripts/check/asan.sh [GTEST_FILTER]
set -euo pipefail
cd "$(dirname "$0")/../.."
filter=${1:-*}

if ! command -v clang++-14 >/dev/null || ! dpkg -s libclang-rt-14-dev >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
fi
if [ ! -f .deps/sentencepiece/lib/libsentencepiece.a ]; then
  bash scripts/setup/setup.sh
fi

# Every report is fatal, leaks included (LibTorch's and protobuf's singletons stay reachable,
# so LeakSanitizer needs no suppressions). These apply to the build too: gtest_discover_tests
# runs each test binary once to list its tests.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:print_stacktrace=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=2

tests=(base_tests io_tests text_tests data_tests model_tests infer_tests dist_tests deploy_tests train_tests report_tests serve_tests
  cli_tests)
start=$(date +%s)
CC=clang-14 CXX=clang++-14 cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DDQE_SANITIZE=ON -DDQE_BUILD_TESTS=ON >/dev/null
# dqe itself: cli_tests depends on it.
cmake --build build-asan -j2 --target "${tests[@]}" dqe
echo "asan: built in $(( $(date +%s) - start )) s"

failed=0
for t in "${tests[@]}"; do
  log=build-asan/$t.asan.log
  status=0
  t0=$(date +%s)
  "build-asan/$t" --gtest_filter="$filter" --gtest_brief=1 >"$log" 2>&1 || status=$?
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\..*/\1/p' "$log" | tail -n 1)
  total=$(sed -n 's/^\[==========\] \([0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' "$log" | tail -n 1)
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}[.,].*/\1/p' "$log" | tail -n 1)
  if [ "$status" -eq 0 ] && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    echo "asan $t: ${passed:-0}/${total:-0} tests passed, ${skipped:-0} skipped, no sanitizer report ($(( $(date +%s) - t0 )) s)"
  else
    failed=1
    echo "asan $t: FAILED (exit $status; ${passed:-0}/${total:-0} passed), see $log; its end:" >&2
    grep -nE 'ERROR: (Address|Leak)Sanitizer|runtime error:|\[  FAILED  \]' "$log" | head -n 20 >&2 || true
    tail -n 40 "$log" >&2
  fi
done
echo "asan: done in $(( $(date +%s) - start )) s"
exit "$failed"
