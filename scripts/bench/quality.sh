#!/usr/bin/env bash
# The quality benchmark on Home Depot (issue 6): the recommended recipe end to end, then
# the classic baselines, side by side on dev.
#
#   1. dqe tokenizer train   WordPiece, 8000 tokens, on ../shared/data/corpus/product_text.txt
#   2. dqe pretrain          4x256 encoder, masked LM on the same corpus (configs/quality-pretrain.json)
#   3. dqe train --init      fine-tune on train.jsonl with lexical features, select on dev.jsonl
#                            (configs/quality-finetune.json), once per seed in $SEEDS (default "42 7 1")
#   4. dqe eval              dev RMSE, MAE, Spearman, nDCG@10 of the first seed's model and of the
#                            ensemble of all seeds (their scores averaged)
#   5. scripts/bench/baselines.py  train mean, lexical features + boosting, fastText (tuned on dev)
#   6. ../shared/reference/lexical_gbm.py  the strongest classic opponent we know: 27 lexical
#                            features and histogram boosting tuned on dev (its nDCG@10 skips
#                            single-row queries, and it reports no random baseline)
#
# Leaves OUT_DIR/model (the final model: one directory per seed and an ensemble.json, so that
# `dqe score --model OUT_DIR/model` scores with the ensemble), OUT_DIR/metrics.md and .json
# (the table), and OUT_DIR/times.tsv (wall and CPU seconds per stage). Everything is selected
# on dev only. PRETRAIN_ARGS and FINETUNE_ARGS add flags (e.g. "--max-steps 20" for a smoke run;
# "--precision fp32" for the fp32 arm). ENCODER=DIR skips steps 1 and 2 and fine-tunes the
# vocabulary and encoder of an earlier run's OUT_DIR (DIR/tokenizer, DIR/pretrain) instead, so
# that two precisions of fine-tuning start from the same encoder. BASELINES=FILE takes step 5's
# table from an earlier run's baselines.json instead of measuring it again (it does not depend
# on dqe); LEXICAL_GBM=FILE takes step 6's from an earlier lexical_gbm.json the same way.
# Usage: scripts/bench/quality.sh OUT_DIR   (2 cores: 41 minutes on an Intel Xeon with AMX, 60-75 on one
# without; docs/results.md)
set -euo pipefail
trap 'echo "quality.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/quality.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
corpus=$shared/data/corpus/product_text.txt
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
for f in "$corpus" "$train" "$dev"; do [ -r "$f" ] || { echo "quality.sh: $f: not found" >&2; exit 1; }; done

bash "$here/scripts/setup/setup.sh" python3-numpy python3-scipy python3-sklearn fasttext time
source "$here/scripts/bench/dqe_binary.sh"

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -n "${ENCODER:-}" ]; then
  ENCODER=$(cd "$ENCODER" && pwd)
  [ "$ENCODER" != "$out" ] || { echo "quality.sh: ENCODER is OUT_DIR itself" >&2; exit 1; }
fi
rm -rf "$out/tokenizer" "$out/pretrain" "$out"/finetune* "$out/model" "$out/metrics.md" "$out/metrics.json"
printf 'stage\twall_s\tcpu_s\n' > "$out/times.tsv"
stage() {  # stage NAME COMMAND...: runs it, records wall and CPU (user + sys) seconds
  local name=$1; shift
  echo "== $name" >&2
  /usr/bin/time -f "%e %U %S" -o "$out/.time" "$@"
  read -r wall user sys < "$out/.time"
  printf '%s\t%s\t%s\n' "$name" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" >> "$out/times.tsv"
}

if [ -n "${ENCODER:-}" ]; then
  for d in tokenizer pretrain; do
    [ -d "$ENCODER/$d" ] || { echo "quality.sh: ENCODER=$ENCODER: no $d/ there" >&2; exit 1; }
    cp -r "$ENCODER/$d" "$out/$d"
  done
else
  stage tokenizer "$dqe" tokenizer train --corpus "$corpus" --type wordpiece --vocab-size 8000 --out "$out/tokenizer"
  stage pretrain "$dqe" pretrain --config "$here/configs/quality-pretrain.json" --corpus "$corpus" \
    --tokenizer "$out/tokenizer" --out "$out/pretrain" ${PRETRAIN_ARGS:-}
fi
read -r -a seeds <<< "${SEEDS:-42 7 1}"
rm -rf "$out/model.tmp" && mkdir -p "$out/model.tmp"
members=()
for seed in "${seeds[@]}"; do
  stage "finetune (seed $seed)" "$dqe" train --config "$here/configs/quality-finetune.json" --init "$out/pretrain" \
    --train "$train" --dev "$dev" --out "$out/finetune-$seed" --seed "$seed" ${FINETUNE_ARGS:-}
  cp -r "$out/finetune-$seed/best" "$out/model.tmp/seed$seed"
  rm -f "$out/model.tmp/seed$seed/optimizer.pt"  # only resuming needs it
  members+=("\"seed$seed\"")
done
(IFS=,; printf '{"members": [%s]}\n' "${members[*]}") > "$out/model.tmp/ensemble.json"
mv "$out/model.tmp" "$out/model"
stage "eval (seed ${seeds[0]})" "$dqe" eval --model "$out/model/seed${seeds[0]}" --data "$dev" --metrics-out "$out/dqe_single_dev.json"
stage "eval (ensemble)" "$dqe" eval --model "$out/model" --data "$dev" --metrics-out "$out/dqe_dev.json"
if [ -n "${BASELINES:-}" ]; then
  cp "$BASELINES" "$out/baselines.json"
else
  stage baselines /usr/bin/python3 "$here/scripts/bench/baselines.py" --train "$train" --dev "$dev" \
    --out "$out/baselines.json" --threads "$(nproc)"
fi
if [ -n "${LEXICAL_GBM:-}" ]; then
  cp "$LEXICAL_GBM" "$out/lexical_gbm.json"
else
  stage lexical_gbm /usr/bin/python3 "$shared/reference/lexical_gbm.py" --train "$train" --dev "$dev" \
    --out "$out/lexical_gbm.json" > /dev/null
fi

/usr/bin/python3 - "$out" "${#seeds[@]}" "${seeds[0]}" <<'PY'
import json, sys
out, n_seeds, first_seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dqe = json.load(open(f"{out}/dqe_dev.json"))
single = json.load(open(f"{out}/dqe_single_dev.json"))
base = json.load(open(f"{out}/baselines.json"))
times = {l.split("\t")[0]: l.split("\t")[1:] for l in open(f"{out}/times.tsv").read().split("\n")[1:] if l}
pre = [json.loads(l) for l in open(f"{out}/pretrain/eval_log.jsonl")]
best_pre = min(pre, key=lambda r: r["value"])
row = lambda m: {"rmse": m["rmse"], "mae": m["mae"], "spearman": m["spearman"], "ndcg@10": m["ranking"]["ndcg_at_10"],
                 "ndcg@10_gain": m["ranking"]["ndcg_at_10"] - m["ranking"]["random_ndcg_at_10"]}
rows = {f"dqe: WordPiece + MLM pretraining + fine-tuning with lexical features (4x256), ensemble of {n_seeds} seeds": row(dqe),
        f"dqe: the same, one fine-tuning (seed {first_seed})": row(single)}
gbm = json.load(open(f"{out}/lexical_gbm.json"))["dev"]
base["lexical_gbm.py: 27 lexical features + histogram boosting, tuned on dev (../shared/reference)"] = {
    "rmse": gbm["rmse"], "mae": gbm["mae"], "spearman": gbm["spearman"], "ndcg@10": gbm["ndcg_at_10"], "ndcg@10_gain": None}
rows.update(base)
best_base = min(v["rmse"] for k, v in base.items())
lines = ["| Home Depot dev | RMSE | MAE | Spearman | nDCG@10 | gain over random |", "|---|---|---|---|---|---|"]
f = lambda x: "-" if x is None else f"{x:.4f}"
for name, r in rows.items():
    lines.append(f"| {name} | {f(r['rmse'])} | {f(r['mae'])} | {f(r.get('spearman'))} | {f(r['ndcg@10'])} | {'-' if r['ndcg@10_gain'] is None else format(r['ndcg@10_gain'], '+.4f')} |")
ours = rows[next(iter(rows))]["rmse"]
lines += ["", f"dqe RMSE vs the best baseline: {ours:.4f} vs {best_base:.4f} ({(ours / best_base - 1) * 100:+.1f}%; target -5%).",
          f"Held-back MLM accuracy after pretraining: {pre[0]['metrics']['mlm_accuracy']:.3f} -> "
          f"{best_pre['metrics']['mlm_accuracy']:.3f} (step {best_pre['step']}).", "",
          "| stage | wall s | CPU s |", "|---|---|---|"]
lines += [f"| {k} | {v[0]} | {v[1]} |" for k, v in times.items()]
open(f"{out}/metrics.md", "w").write("\n".join(lines) + "\n")
json.dump({"dev": rows, "times": times, "pretrain_mlm": {"initial": pre[0]["metrics"], "best": best_pre["metrics"]}},
          open(f"{out}/metrics.json", "w"), indent=2)
print("\n".join(lines))
PY
rm -f "$out/.time"
