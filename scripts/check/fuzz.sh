#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build-fuzz/ and runs
# each for a bounded time on a copy of its seed corpus (the committed corpus never grows).
# Usage: scripts/check/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Prints "fuzz TARGET: N execs in S s, no crash" per target; exits non-zero if any target
# crashes, leaks, hangs or trips a sanitizer. Crash inputs are kept in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/check/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi

# clang-14 and its runtimes (libFuzzer, ASan, UBSan) from Debian.
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

targets=(jsonl_reader_fuzz wordpiece_fuzz safetensors_fuzz config_fuzz serve_request_fuzz)
# Longest input per target. jsonl_reader_fuzz sets max_line_bytes to 4096, so 8192 reaches
# over-long lines; the others need no more than a few KiB to reach every check.
declare -A max_len=([jsonl_reader_fuzz]=8192 [wordpiece_fuzz]=4096 [safetensors_fuzz]=4096 [config_fuzz]=4096
  [serve_request_fuzz]=4096)
declare -A dict=([jsonl_reader_fuzz]=json [wordpiece_fuzz]=wordpiece [safetensors_fuzz]=json [config_fuzz]=json
  [serve_request_fuzz]=json)

start=$(date +%s)
# -O1 without NDEBUG: fast enough to fuzz, quicker to build, and assertions stay on.
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DDQE_FUZZ=ON -DDQE_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]}"
echo "fuzz: built in $(( $(date +%s) - start )) s"

# halt_on_error makes every report fatal; leaks are checked by libFuzzer after each input.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:print_stacktrace=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/dqe-fuzz.XXXXXX")
# The targets rewrite a scratch file per input: in memory (/dev/shm) when possible, several
# times faster than a disk, and in a directory removed at the end even when a target crashes.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  scratch=$(mktemp -d /dev/shm/dqe-fuzz.XXXXXX)
else
  scratch="$work/scratch"
  mkdir "$scratch"
fi
trap 'rm -rf "$work" "$scratch"' EXIT
export TMPDIR="$scratch"
crashes=build-fuzz/crashes
mkdir -p "$crashes"
failed=0
for target in "${targets[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  cp -R "tests/fuzz/corpus/$target/." "$corpus/"
  # The shared fixture's Hugging Face config and vocabulary seed the config and WordPiece
  # fuzzers, read from ../shared (not committed).
  shared_fixture="${DQE_SHARED:-../shared}/fixtures/tiny-bert-hf"
  if [ "$target" = config_fuzz ] && [ -r "$shared_fixture/config.json" ]; then
    cp "$shared_fixture/config.json" "$corpus/hf_classification_config.json"
  fi
  if [ "$target" = wordpiece_fuzz ] && [ -r "$shared_fixture/vocab.txt" ]; then
    cp "$shared_fixture/vocab.txt" "$corpus/vocab_fixture.txt"
  fi
  log="$work/$target.log"
  rm -f "$crashes/$target-"*
  status=0
  "build-fuzz/tests/fuzz/$target" "$corpus" -max_total_time="$seconds" -max_len="${max_len[$target]}" \
    -dict="tests/fuzz/${dict[$target]}.dict" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$crashes/$target-" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  if [ "$status" -eq 0 ] && [ -n "$execs" ]; then
    echo "fuzz $target: $execs execs in ${secs:-$seconds} s, no crash"
  else
    failed=1
    echo "fuzz $target: FAILED (exit $status), last lines of its log:" >&2
    tail -n 60 "$log" >&2
    ls "$crashes" | sed -n "s|^$target-|  crash input: $crashes/$target-|p" >&2
  fi
done
echo "fuzz: done in $(( $(date +%s) - start )) s"
exit "$failed"
