#!/usr/bin/env bash
# The quality benchmark on Home Depot (issue 6): the recommended recipe end to end, then
# the classic baselines, side by side on dev.
#
#   1. dqe tokenizer train   WordPiece, 8000 tokens, on ../shared/data/corpus/product_text.txt
#   2. dqe pretrain          4x256 encoder, masked LM on the same corpus (configs/quality-pretrain.json)
#   3. dqe train --init      fine-tune on train.jsonl, select on dev.jsonl (configs/quality-finetune.json)
#   4. dqe eval              dev RMSE, MAE, Spearman, nDCG@10
#   5. scripts/baselines.py  train mean, lexical features + boosting, fastText (tuned on dev)
#
# Leaves OUT_DIR/model (the final model), OUT_DIR/metrics.md and .json (the table), and
# OUT_DIR/times.tsv (wall and CPU seconds per stage). Everything is selected on dev only.
# Usage: scripts/quality.sh OUT_DIR   (about 40 minutes on 2 cores)
set -euo pipefail
trap 'echo "quality.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/quality.sh OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
corpus=$shared/data/corpus/product_text.txt
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
for f in "$corpus" "$train" "$dev"; do [ -r "$f" ] || { echo "quality.sh: $f: not found" >&2; exit 1; }; done

bash "$here/scripts/setup.sh" python3-numpy python3-sklearn fasttext time
dqe=${DQE:-}
if [ -z "$dqe" ]; then
  bash "$here/scripts/build.sh" "$here/build-quality" -DDQE_BUILD_TESTS=OFF
  dqe=$here/build-quality/dqe
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/tokenizer" "$out/pretrain" "$out/finetune" "$out/model" "$out/metrics.md" "$out/metrics.json"
printf 'stage\twall_s\tcpu_s\n' > "$out/times.tsv"
stage() {  # stage NAME COMMAND...: runs it, records wall and CPU (user + sys) seconds
  local name=$1; shift
  echo "== $name" >&2
  /usr/bin/time -f "%e %U %S" -o "$out/.time" "$@"
  read -r wall user sys < "$out/.time"
  printf '%s\t%s\t%s\n' "$name" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" >> "$out/times.tsv"
}

stage tokenizer "$dqe" tokenizer train --corpus "$corpus" --type wordpiece --vocab-size 8000 --out "$out/tokenizer"
stage pretrain "$dqe" pretrain --config "$here/configs/quality-pretrain.json" --corpus "$corpus" \
  --tokenizer "$out/tokenizer" --out "$out/pretrain"
stage finetune "$dqe" train --config "$here/configs/quality-finetune.json" --init "$out/pretrain" \
  --train "$train" --dev "$dev" --out "$out/finetune"
cp -r "$out/finetune/best" "$out/model.tmp" && mv "$out/model.tmp" "$out/model"
stage eval "$dqe" eval --model "$out/model" --data "$dev" --metrics-out "$out/dqe_dev.json"
stage baselines /usr/bin/python3 "$here/scripts/baselines.py" --train "$train" --dev "$dev" \
  --out "$out/baselines.json" --threads "$(nproc)"

/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
dqe = json.load(open(f"{out}/dqe_dev.json"))
base = json.load(open(f"{out}/baselines.json"))
times = {l.split("\t")[0]: l.split("\t")[1:] for l in open(f"{out}/times.tsv").read().split("\n")[1:] if l}
pre = [json.loads(l) for l in open(f"{out}/pretrain/eval_log.jsonl")]
best_pre = min(pre, key=lambda r: r["value"])
rank = dqe["ranking"]
rows = {"dqe: WordPiece + MLM pretraining + fine-tuning (4x256)": {
    "rmse": dqe["rmse"], "mae": dqe["mae"], "spearman": dqe["spearman"], "ndcg@10": rank["ndcg_at_10"],
    "ndcg@10_gain": rank["ndcg_at_10"] - rank["random_ndcg_at_10"]}}
rows.update(base)
best_base = min(v["rmse"] for k, v in base.items())
lines = ["| Home Depot dev | RMSE | MAE | Spearman | nDCG@10 | gain over random |", "|---|---|---|---|---|---|"]
f = lambda x: "-" if x is None else f"{x:.4f}"
for name, r in rows.items():
    lines.append(f"| {name} | {f(r['rmse'])} | {f(r['mae'])} | {f(r.get('spearman'))} | {f(r['ndcg@10'])} | {r['ndcg@10_gain']:+.4f} |")
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
