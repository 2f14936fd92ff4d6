#!/usr/bin/env bash
# Adversarial robustness on Home Depot (issue 19): a plain model, an FGM model and a PGD model
# fine-tuned from one pretrained encoder with the same seed and data, then attacked copies of dev
# pairs (scripts/data/make_attacks.py: stuffing, look-alikes, invisible characters, character
# noise, title padding on irrelevant and partly relevant pairs). For each model: clean dev RMSE
# and Spearman (held-out dev); per attack, the mean score inflation over the pair's original and the share of
# attacked lines flagged by score --detect at the calibrated false-positive rate; the same with
# score --normalize; and the share of clean held-out dev lines flagged.
#
# ENCODER=DIR (default /work/bench/peft/pretrain/best): the pretrained encoder. STEPS (default
# 500): optimizer steps of each run (a reduced run; the recipe's two epochs are ~3600).
# ARMS (default "plain fgm pgd"; also "augment" and "fgm-augment": --augment AUGMENT, default
# 0.2, alone and with FGM); PGD_STEPS (default 3); FINETUNE_ARGS adds flags to every run;
# PAIRS (default 600) pairs attacked. RMSE and Spearman are of the held-out dev lines.
# Leaves OUT_DIR/adversarial.md (the table). Usage: scripts/bench/adversarial.sh OUT_DIR
set -euo pipefail
trap 'echo "adversarial.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/adversarial.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
encoder=${ENCODER:-/work/bench/peft/pretrain/best}
for f in "$train" "$dev" "$encoder/config.json"; do [ -r "$f" ] || { echo "adversarial.sh: $f: not found" >&2; exit 1; }; done
source "$here/scripts/bench/dqe_binary.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)
steps=${STEPS:-500}

# Dev in two: the first DEV_LINES (default 3000) for early stopping and the calibration of the
# detection thresholds, the rest held out for the attacks and the clean false-positive rate.
head -n "${DEV_LINES:-3000}" "$dev" > "$out/dev-calibration.jsonl"
sed -n "$(( ${DEV_LINES:-3000} + 1 )),$(( ${DEV_LINES:-3000} + ${HELDOUT_LINES:-1000000} ))p" "$dev" > "$out/dev-heldout.jsonl"
python3 "$here/scripts/data/make_attacks.py" --input "$out/dev-heldout.jsonl" --output "$out/attacks.jsonl" \
  --pairs "${PAIRS:-600}" --seed 7

read -r -a arms <<< "${ARMS-plain fgm pgd}"
for arm in "${arms[@]}"; do
  case $arm in
    plain) flags=() ;;
    fgm) flags=(--adv fgm --adv-eps 1.0) ;;
    pgd) flags=(--adv pgd --adv-eps 1.0 --adv-steps "${PGD_STEPS:-3}" --adv-alpha 0.3) ;;
    augment) flags=(--augment "${AUGMENT:-0.2}") ;;
    fgm-augment) flags=(--adv fgm --adv-eps 1.0 --augment "${AUGMENT:-0.2}") ;;
    *) echo "adversarial.sh: unknown arm $arm" >&2; exit 1 ;;
  esac
  echo "== $arm" >&2
  rm -rf "$out/$arm"
  /usr/bin/time -f "%e" -o "$out/$arm.time" "$dqe" train --config "$here/configs/quality-finetune.json" \
    --init "$encoder" --train "$train" --dev "$out/dev-calibration.jsonl" --out "$out/$arm" --seed 42 --max-steps "$steps" \
    --eval-every "$steps" "${flags[@]}" ${FINETUNE_ARGS:-} 2> >(tee "$out/$arm.log" >&2)
  "$dqe" eval --model "$out/$arm" --data "$out/dev-heldout.jsonl" --metrics-out "$out/$arm.dev.json" 2>/dev/null
  "$dqe" score --model "$out/$arm" --input "$out/dev-heldout.jsonl" --output "$out/$arm.dev-scored.jsonl" --detect 2>>"$out/$arm.log"
  "$dqe" score --model "$out/$arm" --input "$out/attacks.jsonl" --output "$out/$arm.attacks.jsonl" --detect 2>>"$out/$arm.log"
  "$dqe" score --model "$out/$arm" --input "$out/attacks.jsonl" --output "$out/$arm.attacks-normalized.jsonl" \
    --detect --normalize 2>>"$out/$arm.log"
done
python3 "$here/scripts/bench/adversarial_table.py" "$out" "$steps" "${arms[@]}" | tee "$out/adversarial.md"
