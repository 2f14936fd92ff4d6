#!/usr/bin/env bash
# Do two dqe builds compute the same thing? Runs the same deterministic scenarios (fp32, one
# thread, fixed seeds) with both: fine-tuning of every task, lexical features, the Hugging
# Face fixture, pretraining from scratch and from --init, fine-tuning the pretrained encoder,
# eval, ensembles and score. Then it compares the weights (hashes), the scores, the metrics and
# the logs without their timings. A refactor that should change nothing must show nothing
# here; where logs differ by design, the differences are listed for reading.
# Usage: scripts/check/same_results.sh OLD_DQE NEW_DQE OUT_DIR   (about a minute)
# Exit status: 0 when weights, scores and metrics agree (logs may differ), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
old=$(realpath "${1:?usage: same_results.sh OLD_DQE NEW_DQE OUT_DIR}")
new=$(realpath "${2:?usage: same_results.sh OLD_DQE NEW_DQE OUT_DIR}")
out=$(realpath -m "${3:?usage: same_results.sh OLD_DQE NEW_DQE OUT_DIR}")
shared=${DQE_SHARED:-../shared}
hf=$shared/fixtures/tiny-bert-hf
[ -d "$hf" ] || { echo "same_results.sh: $hf not found" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
common=(--threads 1 --precision fp32 --device cpu)
sed -n 's/.*"title": "\([^"]*\)".*/\1/p' data/train.jsonl > "$out/corpus.txt"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
for split in ("train", "dev"):
    with open(f"{sys.argv[1]}/{split}_bin.jsonl", "w") as o:
        for line in open(f"data/{split}.jsonl"):
            j = json.loads(line)
            j["label"] = 1 if j["label"] >= 2.5 else 0
            o.write(json.dumps(j) + "\n")
PY

# run DQE SIDE: every scenario with one binary into $out/SIDE; what must agree is kept.
run() {
  local dqe=$1 dir=$out/$2
  mkdir -p "$dir"
  local r=$dir/runs
  "$dqe" train --config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --out "$r/reg" --max-steps 60 \
    --eval-every 20 --seed 3 "${common[@]}"
  "$dqe" train --config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --out "$r/cls" \
    --task classification --label-field grade --labels irrelevant,partial,exact --max-steps 40 --eval-every 20 \
    --grad-accum 2 "${common[@]}"
  "$dqe" train --config configs/tiny.json --train "$out/train_bin.jsonl" --dev "$out/dev_bin.jsonl" --out "$r/bin" \
    --task binary --lexical-features --max-grad-norm 0 --max-steps 40 --eval-every 20 "${common[@]}"
  "$dqe" train --init "$hf" --train data/train.jsonl --dev data/dev.jsonl --out "$r/hf" --lexical-features \
    --max-steps 30 --eval-every 15 --lr 1e-3 --batch-size 16 "${common[@]}"
  "$dqe" pretrain --corpus "$out/corpus.txt" --out "$r/pre" --layers 1 --hidden 32 --heads 2 --intermediate 64 \
    --vocab-size 500 --max-len 32 --max-steps 30 --eval-every 10 --batch-size 32 --chunk-lines 1000 \
    --held-out-every 20 "${common[@]}"
  "$dqe" pretrain --corpus "$out/corpus.txt" --init "$hf" --out "$r/prehf" --whole-word --max-len 32 --max-steps 20 \
    --eval-every 10 --batch-size 16 --grad-accum 2 --held-out-every 30 "${common[@]}"
  "$dqe" train --init "$r/pre" --train data/train.jsonl --dev data/dev.jsonl --out "$r/prefine" --max-steps 30 \
    --eval-every 15 --lr 1e-3 "${common[@]}"
  for m in reg cls hf prefine; do
    "$dqe" eval --model "$r/$m" --data data/dev.jsonl --metrics-out "$dir/$m.metrics.json" "${common[@]}" >/dev/null
    "$dqe" score --model "$r/$m" --input data/score.jsonl --output "$r/$m.scored.jsonl" "${common[@]}"
    # The lines as JSON values (score writes the input's own bytes back, spacing included).
    /usr/bin/python3 -c 'import json, sys
with open(sys.argv[2], "w") as o:
    for line in open(sys.argv[1]): o.write(json.dumps(json.loads(line), sort_keys=True) + "\n")' \
      "$r/$m.scored.jsonl" "$dir/$m.scored.jsonl"
  done
  "$dqe" eval --model "$r/reg" --model "$r/prefine" --data data/dev.jsonl --metrics-out "$dir/ensemble.metrics.json" \
    "${common[@]}" >/dev/null
  for m in reg cls bin hf pre prehf prefine; do
    for c in best last; do sha256sum < "$r/$m/$c/model.safetensors" | cut -c1-16 > "$dir/$m.$c.weights"; done
    /usr/bin/python3 - "$r/$m" "$dir/$m" <<'PY'
import json, sys
run, dst = sys.argv[1], sys.argv[2]
for log in ("train_log", "eval_log"):
    with open(f"{dst}.{log}", "w") as o:
        for line in open(f"{run}/{log}.jsonl"):
            j = json.loads(line)
            for k in ("elapsed_s", "samples_per_s", "tokens_per_s", "tokens"):
                j.pop(k, None)
            o.write(json.dumps(j, sort_keys=True) + "\n")
PY
  done
  # Paths name the side; the comparison is of what was computed.
  sed -i "s|$dir/runs|RUNS|g" "$dir"/*.metrics.json
  rm -rf "$r"
}
echo "[same-results] $old" >&2
run "$old" old 2> "$out/old.log"
echo "[same-results] $new" >&2
run "$new" new 2> "$out/new.log"

status=0
for f in "$out"/old/*; do
  name=$(basename "$f")
  if ! cmp -s "$f" "$out/new/$name"; then
    case "$name" in
      *_log) echo "[same-results] logs differ (read them): diff $f $out/new/$name" ;;
      *) echo "[same-results] DIFFERENT: $name"; status=1 ;;
    esac
  fi
done
[ "$status" -eq 0 ] && echo "[same-results] weights, scores and metrics agree"
exit "$status"
