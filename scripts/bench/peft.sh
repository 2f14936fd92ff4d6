#!/usr/bin/env bash
# Parameter-efficient fine-tuning against full fine-tuning on Home Depot (issue 17), from one
# pretrained encoder with the same seed and data: full fine-tuning, LoRA on query and value,
# LoRA on every Linear, and (when this build has them) AdaLoRA, bottleneck adapters and prefix
# tuning (20 virtual tokens, at PREFIX_LR, default 1e-2: PEFT's examples train prefixes at
# 1e-2). For
# each: dev RMSE and Spearman of the selected checkpoint, trainable parameters, checkpoint size
# on disk (the model's files, without optimizer.pt and trainer_state.json), training samples/s
# (from the run's own log, between two steps with no dev evaluation between them), wall time
# and peak RSS.
#
# ENCODER=DIR: the pretrained encoder to start from, e.g. scripts/bench/quality.sh's
#   OUT_DIR/pretrain. Without it the recipe's tokenizer and pretraining stages run first
#   (configs/quality-pretrain.json, about 30 minutes on 2 cores; PRETRAIN_ARGS adds flags).
# ARMS: which runs (default "full lora-qv lora-all adalora adapter prefix"; "" only remeasures speed and
#   rewrites the table from what OUT_DIR holds); FINETUNE_ARGS adds flags
#   to every run (e.g. "--max-steps 300" for a short run); PEFT_LR (default 1e-3) is the
#   learning rate of the parameter-efficient runs (full fine-tuning keeps the recipe's 1e-4).
# Leaves OUT_DIR/peft.md and OUT_DIR/peft.json (the table). Usage: scripts/bench/peft.sh OUT_DIR
set -euo pipefail
trap 'echo "peft.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/peft.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
corpus=$shared/data/corpus/product_text.txt
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
for f in "$corpus" "$train" "$dev"; do [ -r "$f" ] || { echo "peft.sh: $f: not found" >&2; exit 1; }; done

bash "$here/scripts/setup/setup.sh" time
source "$here/scripts/bench/dqe_binary.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)

encoder=${ENCODER:-}
if [ -z "$encoder" ]; then
  encoder=$out/pretrain
  if [ ! -f "$encoder/best/config.json" ] && [ ! -f "$encoder/config.json" ]; then
    rm -rf "$out/tokenizer" "$out/pretrain"
    "$dqe" tokenizer train --corpus "$corpus" --type wordpiece --vocab-size 8000 --out "$out/tokenizer"
    "$dqe" pretrain --config "$here/configs/quality-pretrain.json" --corpus "$corpus" \
      --tokenizer "$out/tokenizer" --out "$encoder" ${PRETRAIN_ARGS:-}
  fi
fi

help=$("$dqe" train --help)
peft_lr=${PEFT_LR:-1e-3}
prefix_lr=${PREFIX_LR:-1e-2}
read -r -a arms <<< "${ARMS-full lora-qv lora-all adalora adapter prefix}"
for arm in "${arms[@]}"; do
  case $arm in
    full) flags=() ;;
    lora-qv) flags=(--peft lora --lora-targets query,value --lr "$peft_lr") ;;
    lora-all) flags=(--peft lora --lora-targets all-linear --lr "$peft_lr") ;;
    adalora) flags=(--peft adalora --lr "$peft_lr") ;;
    adapter) flags=(--peft adapter --lr "$peft_lr") ;;
    prefix) flags=(--peft prefix --lr "$prefix_lr") ;;
    *) echo "peft.sh: unknown arm $arm" >&2; exit 1 ;;
  esac
  if [ "${flags[0]:-}" = --peft ] && ! grep -q -- "${flags[1]}" <<< "$help"; then
    echo "peft.sh: this build has no --peft ${flags[1]}; skipping $arm" >&2
    continue
  fi
  echo "== $arm" >&2
  rm -rf "$out/$arm" "$out/$arm.dev.json"
  /usr/bin/time -f "%e %M" -o "$out/$arm.time" "$dqe" train --config "$here/configs/quality-finetune.json" \
    --init "$encoder" --train "$train" --dev "$dev" --out "$out/$arm" --seed 42 "${flags[@]}" ${FINETUNE_ARGS:-} \
    2> >(tee "$out/$arm.log" >&2)
  "$dqe" eval --model "$out/$arm" --data "$dev" --metrics-out "$out/$arm.dev.json" 2>/dev/null
done

# Training speed, apart from the runs above (whose rates a busy machine skews one arm at a time):
# every arm measured, SPEED_ROUNDS (default 2) rounds of SPEED_STEPS (default 60) steps each, the
# arms alternating within a round, on a 64-line dev file; samples/s between step 10 and the last.
head -n 64 "$dev" > "$out/dev-64.jsonl"
speed_arms=()
for arm in full lora-qv lora-all adalora adapter prefix; do [ -f "$out/$arm.dev.json" ] && speed_arms+=("$arm"); done
: > "$out/speed.tsv"
for round in $(seq "${SPEED_ROUNDS:-2}"); do
  for arm in "${speed_arms[@]}"; do
    # The arm's own recorded flags, with another length, output and dev file.
    read -r -a flags <<< "$(/usr/bin/python3 -c 'import json,sys
c = json.load(open(sys.argv[1]))["config"]
print(" ".join(["--peft", c["peft"], "--lr", str(c["lr"])] + (["--lora-targets", ",".join(c["lora-targets"])] if c["peft"] == "lora" else [])))' "$out/$arm/last/trainer_state.json")"
    rm -rf "$out/speed-$arm"
    "$dqe" train --config "$here/configs/quality-finetune.json" --init "$encoder" --train "$train" --dev "$out/dev-64.jsonl" \
      --out "$out/speed-$arm" --seed 42 "${flags[@]}" --max-steps "${SPEED_STEPS:-60}" --eval-every 0 >/dev/null 2>&1
    /usr/bin/python3 -c 'import json,sys
r = [json.loads(l) for l in open(sys.argv[1] + "/train_log.jsonl")]
a, b = [x for x in r if x["step"] >= 10][0], r[-1]
print(sys.argv[2], (b["step"] - a["step"]) * 32 / (b["elapsed_s"] - a["elapsed_s"]), sep="\t")' "$out/speed-$arm" "$arm" >> "$out/speed.tsv"
    rm -rf "$out/speed-$arm"
  done
done

# The table holds every arm measured in OUT_DIR so far (an earlier invocation's too: ARMS may
# add the rest later from the same ENCODER), in this order.
/usr/bin/python3 - "$out" full lora-qv lora-all adalora adapter prefix <<'PY'
import json, os, re, struct, sys
out = sys.argv[1]
arms = [a for a in sys.argv[2:] if os.path.exists(f"{out}/{a}.dev.json")]

def safetensors_numel(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    total = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        k = 1
        for d in t["shape"]:
            k *= d
        total += k
    return total

def trainable(arm):
    # Parameter-efficient runs log the count; full fine-tuning trains every weight it saves.
    for line in open(f"{out}/{arm}.log"):
        m = re.search(r"(\d+) trainable parameters", line)
        if m:
            return int(m.group(1))
    return safetensors_numel(f"{out}/{arm}/best/model.safetensors")

def size(arm):
    d = f"{out}/{arm}/best"
    return sum(os.path.getsize(f"{d}/{f}") for f in os.listdir(d) if f not in ("optimizer.pt", "trainer_state.json"))

def speed(arm):
    # The median of the alternating speed rounds; the run's own rate when there are none.
    rates = sorted(float(r) for a, r in (l.split() for l in open(f"{out}/speed.tsv")) if a == arm)
    return rates[len(rates) // 2] if rates else rate(arm)

def rate(arm, batch=32):
    recs = [json.loads(l) for l in open(f"{out}/{arm}/train_log.jsonl")]
    evals = [json.loads(l)["step"] for l in open(f"{out}/{arm}/eval_log.jsonl")]
    first_eval = min(evals) if evals else recs[-1]["step"]
    window = [r for r in recs if 10 <= r["step"] <= first_eval - 1] or recs
    a, b = window[0], window[-1]
    return (b["step"] - a["step"]) * batch / (b["elapsed_s"] - a["elapsed_s"]) if b["elapsed_s"] > a["elapsed_s"] else float("nan")

rows = {}
for arm in arms:
    m = json.load(open(f"{out}/{arm}.dev.json"))
    wall, rss_kb = open(f"{out}/{arm}.time").read().split()[-2:]
    rows[arm] = {"rmse": m["rmse"], "spearman": m["spearman"], "trainable_parameters": trainable(arm),
                 "checkpoint_bytes": size(arm), "samples_per_s": speed(arm), "samples_per_s_in_run": rate(arm), "wall_s": float(wall),
                 "peak_rss_mb": int(rss_kb) / 1024}
json.dump(rows, open(f"{out}/peft.json", "w"), indent=2)
full = rows.get("full")
lines = ["| run | dev RMSE | Spearman | trainable parameters | checkpoint | samples/s | wall | peak RSS |",
         "|---|---|---|---|---|---|---|---|"]
for arm, r in rows.items():
    rel = lambda k, fmt: (fmt.format(r[k] / full[k]) if full and arm != "full" else "")
    lines.append(f"| {arm} | {r['rmse']:.4f}{' (' + rel('rmse', '{:.3f}x') + ')' if rel('rmse', '') else ''} | "
                 f"{r['spearman']:.4f} | {r['trainable_parameters']:,} | "
                 f"{r['checkpoint_bytes'] / 1e6:.2f} MB{' (' + rel('checkpoint_bytes', '{:.2%}') + ')' if rel('checkpoint_bytes', '') else ''} | "
                 f"{r['samples_per_s']:.1f}{' (' + rel('samples_per_s', '{:.2f}x') + ')' if rel('samples_per_s', '') else ''} | "
                 f"{r['wall_s']:.0f} s | {r['peak_rss_mb']:.0f} MB |")
open(f"{out}/peft.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
