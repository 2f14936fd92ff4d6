#!/usr/bin/env bash
# Side-input fusion (issue 20), measured two ways with the same seeds:
#  1. Controlled data (scripts/data/make_fusion_data.py): a small model from scratch trained
#     text-only, +features, +image, +all (gate), +all (concat), +all (gate) without modality
#     dropout; each evaluated on dev with all its inputs and with each input removed at score
#     time.
#  2. Home Depot with engine-side signals (scripts/data/homedepot_signals.py: BM25 of the
#     title, distinct queries per product, results per query, title length; no labels), from
#     the pretrained encoder ENCODER: text-only against text + signals.
# Environment: DQE (default build-test/dqe), ENCODER (default /work/bench/peft/pretrain/best),
#   HD_STEPS (default 600), CONTROLLED_STEPS (default 1500), SEED (the controlled runs', default 7),
#   PARTS ("controlled homedepot"),
#   ARMS (the controlled runs, default "text all-gate all-concat features image all-gate-nodrop").
# Leaves OUT_DIR/fusion.md (the tables) and the runs. Usage: scripts/bench/fusion.sh OUT_DIR
set -euo pipefail
trap 'echo "fusion.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/fusion.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
dqe=${DQE:-$here/build-test/dqe}
encoder=${ENCODER:-/work/bench/peft/pretrain/best}
hd_steps=${HD_STEPS:-600}
controlled_steps=${CONTROLLED_STEPS:-1500}
parts=${PARTS:-controlled homedepot}
mkdir -p "$out"
out=$(cd "$out" && pwd)
md=$out/fusion.md
: > "$md"

metric() {  # metric EVAL_JSON KEY
  python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"
}

if [[ " $parts " == *" controlled "* ]]; then
  data=$out/controlled
  python3 "$here/scripts/data/make_fusion_data.py" "$data" --train 4000 --dev 1000 --seed 1
  small=(--layers 2 --hidden 64 --heads 2 --intermediate 128 --vocab-size 200 --max-len 16 --lr 1e-3
         --batch-size 32 --max-steps "$controlled_steps" --eval-every "$controlled_steps" --seed "${SEED:-7}" --threads 2 --precision fp32)
  none=none_field  # a field no line has: that input is not read
  declare -A arms=(
    [text]="--features-field $none --attributes-field $none --image-field $none"
    [features]="--attributes-field $none --image-field $none"
    [image]="--features-field $none --attributes-field $none"
    [all-gate]="--fusion gate"
    [all-concat]="--fusion concat"
    [all-gate-nodrop]="--fusion gate --modality-dropout 0"
  )
  {
    echo "### Controlled data: dev RMSE (4000 train, 1000 dev lines; $controlled_steps steps from scratch, 2x64 model, seed ${SEED:-7})"
    echo
    echo "| trained with | all inputs | without features | without image | without attributes | text only |"
    echo "|---|---|---|---|---|---|"
  } >> "$md"
  for arm in ${ARMS:-text all-gate all-concat features image all-gate-nodrop}; do
    run=$out/runs/$arm
    [ -f "$run/best/config.json" ] || nice -n 10 "$dqe" train --train "$data/train.jsonl" --dev "$data/dev.jsonl" \
      --out "$run" "${small[@]}" ${arms[$arm]} > "$out/runs_$arm.log" 2>&1
    row="| $arm"
    for d in dev dev_no_features dev_no_image dev_no_attributes dev_text_only; do
      nice -n 10 "$dqe" eval --model "$run" --data "$data/$d.jsonl" --metrics-out "$run/eval_$d.json" --threads 2 \
        --precision fp32 > /dev/null 2>&1
      row="$row | $(metric "$run/eval_$d.json" rmse)"
    done
    echo "$row |" >> "$md"
  done
  echo >> "$md"
fi

if [[ " $parts " == *" homedepot "* ]]; then
  hd=$out/homedepot
  python3 "$here/scripts/data/homedepot_signals.py" "$hd" "$shared/data/homedepot/train.jsonl" \
    "$shared/data/homedepot/dev.jsonl"
  ft=(--init "$encoder" --max-steps "$hd_steps" --batch-size 32 --lr 1e-4 --eval-every 300 --seed 11 --threads 2)
  {
    echo "### Home Depot: text only against text + engine signals ($hd_steps steps from $encoder, seed 11)"
    echo
    echo "| run | dev RMSE | dev Spearman |"
    echo "|---|---|---|"
  } >> "$md"
  for arm in text signals; do
    run=$out/runs/hd-$arm
    src=$shared/data/homedepot
    [ "$arm" = signals ] && src=$hd
    [ -f "$run/best/config.json" ] || nice -n 10 "$dqe" train --train "$src/train.jsonl" --dev "$src/dev.jsonl" \
      --out "$run" "${ft[@]}" > "$out/runs_hd-$arm.log" 2>&1
    nice -n 10 "$dqe" eval --model "$run" --data "$src/dev.jsonl" --metrics-out "$run/eval_dev.json" --threads 2 \
      > /dev/null 2>&1
    echo "| $arm | $(metric "$run/eval_dev.json" rmse) | $(metric "$run/eval_dev.json" spearman) |" >> "$md"
  done
fi
cat "$md"
