#!/usr/bin/env bash
# The main job on the project's own sample data: set up, build, train a small model on
# data/train.jsonl, evaluate it on data/dev.jsonl, score data/score.jsonl, print the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup/setup.sh
bash scripts/setup/build.sh build-demo -DDQE_BUILD_TESTS=OFF
dqe=build-demo/dqe
run=runs/demo
rm -rf "$run"
echo "== train (tiny preset, from scratch, WordPiece vocabulary built from the data)"
$dqe train --config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --out "$run"
echo "== eval on data/dev.jsonl"
$dqe eval --model "$run" --data data/dev.jsonl --metrics-out "$run/dev_metrics.json"
echo "== score data/score.jsonl (keep: score >= 2.5)"
$dqe score --model "$run" --input data/score.jsonl --output "$run/scored.jsonl" --threshold 2.5
head -n 3 "$run/scored.jsonl"
echo "== done in $(( $(date +%s) - start ))s: model in $run/best, metrics in $run/dev_metrics.json, scores in $run/scored.jsonl"
