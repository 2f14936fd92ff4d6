#!/usr/bin/env bash
# Ranking losses against the pointwise recipe on Home Depot (issue 32), from one pretrained
# encoder at the same budget: the recipe (configs/quality-finetune.json, selected on dev RMSE),
# then the recipe with --rank-loss listnet, lambdaloss and ranknet (--rank-weight RANK_WEIGHT,
# default 0.5; selected on dev nDCG@10), once per seed in SEEDS (default "42 7 1"); the arm
# pointwise-ndcg is the recipe selected on dev nDCG@10, which tells the selection's share of a
# gain from the loss's. For each
# arm: the mean and the spread (sample standard deviation, and min..max) over the seeds of dev
# nDCG@10, its gain over a random order, MRR, Spearman and RMSE, as `dqe eval` gives them.
#
# ENCODER=DIR (required): the pretrained encoder, e.g. scripts/bench/quality.sh's OUT_DIR/pretrain.
# ARMS (default "pointwise pointwise-ndcg listnet lambdaloss ranknet"; "" only rewrites the table from what
# OUT_DIR holds); FINETUNE_ARGS adds flags to every run (e.g. "--max-steps 400 --eval-every 200"
# for a reduced run; the budget must be the same for every arm to compare them).
# Leaves OUT_DIR/ranking.md and OUT_DIR/ranking.json. Usage: ENCODER=DIR scripts/bench/ranking.sh OUT_DIR
set -euo pipefail
trap 'echo "ranking.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: ENCODER=DIR scripts/bench/ranking.sh OUT_DIR}
encoder=${ENCODER:?ENCODER=DIR: the pretrained encoder to fine-tune (scripts/bench/quality.sh OUT_DIR/pretrain)}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
for f in "$train" "$dev"; do [ -r "$f" ] || { echo "ranking.sh: $f: not found" >&2; exit 1; }; done

bash "$here/scripts/setup/setup.sh" time
source "$here/scripts/bench/dqe_binary.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)

read -r -a seeds <<< "${SEEDS:-42 7 1}"
read -r -a arms <<< "${ARMS-pointwise pointwise-ndcg listnet lambdaloss ranknet}"
for arm in "${arms[@]}"; do
  case $arm in
    pointwise) flags=() ;;
    pointwise-ndcg) flags=(--select-metric ndcg_at_10) ;;
    listnet | ranknet | lambdaloss)
      flags=(--rank-loss "$arm" --rank-weight "${RANK_WEIGHT:-0.5}" --select-metric ndcg_at_10) ;;
    *) echo "ranking.sh: unknown arm $arm" >&2; exit 1 ;;
  esac
  for seed in "${seeds[@]}"; do
    run=$arm-$seed
    echo "== $run" >&2
    rm -rf "${out:?}/$run" "$out/$run.dev.json"
    /usr/bin/time -f "%e %M" -o "$out/$run.time" "$dqe" train --config "$here/configs/quality-finetune.json" \
      --init "$encoder" --train "$train" --dev "$dev" --out "$out/$run" --seed "$seed" "${flags[@]}" \
      ${FINETUNE_ARGS:-} 2> >(tee "$out/$run.log" >&2)
    "$dqe" eval --model "$out/$run" --data "$dev" --precision fp32 --metrics-out "$out/$run.dev.json" 2>/dev/null
  done
done

# The table holds every run in OUT_DIR (an earlier invocation's too), arm by arm.
/usr/bin/python3 - "$out" pointwise pointwise-ndcg listnet lambdaloss ranknet <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
keys = [("ndcg_at_10", "nDCG@10"), ("ndcg_gain", "nDCG@10 - random"), ("mrr", "MRR"), ("spearman", "Spearman"),
        ("rmse", "RMSE")]

def metrics(path):
    m = json.load(open(path))
    r = m["ranking"]
    return {"ndcg_at_10": r["ndcg_at_10"], "ndcg_gain": r["ndcg_at_10"] - r["random_ndcg_at_10"], "mrr": r["mrr"],
            "spearman": m["spearman"], "rmse": m["rmse"]}

rows = {}
for arm in sys.argv[2:]:
    runs = sorted(seed for seed in (f[len(arm) + 1:-len(".dev.json")] for f in os.listdir(out)
                                    if f.startswith(arm + "-") and f.endswith(".dev.json")) if seed.isdigit())
    if not runs:
        continue
    per_seed = {seed: metrics(f"{out}/{arm}-{seed}.dev.json") for seed in runs}
    row = {"seeds": runs, "per_seed": per_seed}
    for k, _ in keys:
        v = [m[k] for m in per_seed.values()]
        row[k] = {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
                  "min": min(v), "max": max(v)}
    rows[arm] = row
json.dump(rows, open(f"{out}/ranking.json", "w"), indent=2)
lines = ["| arm | seeds | " + " | ".join(name for _, name in keys) + " |", "|---|---|" + "---|" * len(keys)]
for arm, r in rows.items():
    cells = [f"{r[k]['mean']:.4f} ± {r[k]['sd']:.4f}" for k, _ in keys]
    lines.append(f"| {arm} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
base = rows.get("pointwise")
if base:
    lines += ["", "Against the pointwise recipe (difference of the means; the spread of one arm's seeds is in the table):", ""]
    for arm, r in rows.items():
        if arm != "pointwise":
            lines.append(f"- {arm}: " + ", ".join(f"{name} {r[k]['mean'] - base[k]['mean']:+.4f}" for k, name in keys))
open(f"{out}/ranking.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
