#!/usr/bin/env bash
# Seconds from the start of a run to the end of its first step, one process against two (each
# one thread), for train on the Home Depot pairs and pretrain on the product corpus: what
# reading, building the vocabulary and tokenising cost before training starts, and how much of
# it the processes share. Run it with two binaries (DQE=...) to compare them.
# Usage: scripts/bench/data_shares.sh OUT_DIR
#   DQE (build-test/dqe), DATA (../shared/data), REPEATS (3: the median is reported),
#   TEACHER (a model directory: adds train --teacher TEACHER, where the teacher labels every
#   training pair before the first step; one run each)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: scripts/bench/data_shares.sh OUT_DIR}
DQE=${DQE:-build-test/dqe}
DATA=${DATA:-../shared/data}
REPEATS=${REPEATS:-3}
mkdir -p "$OUT"
head -n 100 "$DATA/homedepot/dev.jsonl" >"$OUT/dev.jsonl"
model=(--layers 2 --hidden 64 --heads 2 --intermediate 128 --max-len 64 --max-steps 1 --threads 1 --precision fp32)
train=(train --train "$DATA/homedepot/train.jsonl" --dev "$OUT/dev.jsonl" --batch-size 16 --patience 0 "${model[@]}")
pretrain=(pretrain --corpus "$DATA/corpus/product_text.txt" --vocab-size 8000 --batch-size 16 "${model[@]}")

# Seconds from rank 0's first log line until "step 1/" (its stderr, timestamped as it comes).
first_step() {  # first_step WORLD OUT_NAME ARGS...
  local world=$1 name=$2
  shift 2
  rm -rf "${OUT:?}/$name"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  for ((rank = world - 1; rank >= 0; rank--)); do
    if ((world == 1)); then
      "$DQE" "$@" --out "$OUT/$name" 2>&1 >/dev/null | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done \
        >"$OUT/$name.log" &
    else
      RANK=$rank WORLD_SIZE=$world MASTER_ADDR=127.0.0.1 MASTER_PORT=$port GLOO_SOCKET_IFNAME=lo \
        "$DQE" "$@" --out "$OUT/$name" 2>&1 >/dev/null | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done \
        >"$OUT/$name.rank$rank.log" &
    fi
  done
  wait
  local log="$OUT/$name.log"
  ((world == 1)) || log="$OUT/$name.rank0.log"
  # From rank 0's first line (written once the job has joined): the rendezvous's retries are
  # not what is measured.
  awk 'NR == 1 { s = $1 } /step 1\// { printf "%.2f\n", $1 - s; exit }' "$log"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

jobs=(train pretrain)
[[ -z ${TEACHER:-} ]] || jobs+=(distill)
distill=("${train[@]}" --teacher "${TEACHER:-}")
declare -A result
for job in "${jobs[@]}"; do
  repeats=$REPEATS
  [[ $job != distill ]] || repeats=1
  for world in 1 2; do
    case $job in
      train) args=("${train[@]}") ;;
      pretrain) args=("${pretrain[@]}") ;;
      distill) args=("${distill[@]}") ;;
    esac
    echo "[bench] $job, $world process(es), $repeats run(s)" >&2
    result[$job$world]=$(for ((i = 0; i < repeats; i++)); do first_step "$world" "$job$world" "${args[@]}"; done | median)
  done
done
{
  echo "{"
  echo "  \"binary\": \"$DQE\","
  for job in "${jobs[@]}"; do
    sep=","
    [[ $job != "${jobs[-1]}" ]] || sep=""
    echo "  \"${job}_first_step_s\": {\"one_process\": ${result[${job}1]}, \"two_processes\": ${result[${job}2]}}$sep"
  done
  echo "}"
} >"$OUT/data_shares.json"
cat "$OUT/data_shares.json"
