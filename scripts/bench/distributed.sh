#!/usr/bin/env bash
# Data-parallel throughput on this machine: one process against two (each one thread), on a
# small model trained from scratch on the Home Depot pairs, and the all-reduce's share of a
# step, which the README's estimates for 8 and 64 workers start from.
# Usage: scripts/bench/distributed.sh OUT_DIR
#   DQE (build-test/dqe), DATA (../shared/data/homedepot), STEPS (300), BATCH (16 per process),
#   LAYERS/HIDDEN/HEADS/INTERMEDIATE (2/128/2/512), MAX_LEN (64), BUCKET_MB (25: --bucket-mb)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: scripts/bench/distributed.sh OUT_DIR}
DQE=${DQE:-build-test/dqe}
DATA=${DATA:-../shared/data/homedepot}
STEPS=${STEPS:-300}
BATCH=${BATCH:-16}
LAYERS=${LAYERS:-2} HIDDEN=${HIDDEN:-128} HEADS=${HEADS:-2} INTERMEDIATE=${INTERMEDIATE:-512} MAX_LEN=${MAX_LEN:-64}
BUCKET_MB=${BUCKET_MB:-25}
mkdir -p "$OUT"
rm -rf "$OUT"/one "$OUT"/two
# A short dev file: evaluation is not what is measured.
head -n 300 "$DATA/dev.jsonl" >"$OUT/dev.jsonl"

args=(train --train "$DATA/train.jsonl" --dev "$OUT/dev.jsonl" --layers "$LAYERS" --hidden "$HIDDEN" --heads "$HEADS"
      --intermediate "$INTERMEDIATE" --max-len "$MAX_LEN" --max-steps "$STEPS" --batch-size "$BATCH" --threads 1
      --precision fp32 --dropout 0.1 --patience 0 --bucket-mb "$BUCKET_MB")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "[bench] 1 process, batch $BATCH, $STEPS steps"
nice -n 10 "$DQE" "${args[@]}" --out "$OUT/one" 2>"$OUT/one.log" >/dev/null
echo "[bench] 2 processes, batch $BATCH each, $STEPS steps"
for rank in 0 1; do
  RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    GLOO_SOCKET_IFNAME=lo nice -n 10 "$DQE" "${args[@]}" --out "$OUT/two" 2>"$OUT/two_rank$rank.log" >/dev/null &
done
wait

python3 - "$OUT" "$STEPS" "$BUCKET_MB" <<'EOF'
import json, re, sys
out, steps = sys.argv[1], int(sys.argv[2])
def last(run):
    lines = [json.loads(l) for l in open(f"{out}/{run}/train_log.jsonl") if l.strip()]
    return lines[-1]
one, two = last("one"), last("two")
log = open(f"{out}/two_rank0.log").read()
# The step (from one all-reduce's start to the next) and the all-reduce time left after the
# backward pass, the wait for the slower process included. Binaries before the overlap logged
# the step without the all-reduce, then the wait and the transfer apart.
m = re.search(r"([\d.e+-]+) ms in all, ([\d.e+-]+) ms all-reducing after the backward pass.*?([\d.]+) of (\d+) buckets", log)
if m:
    step_ms, reduce_ms = float(m.group(1)), float(m.group(2))
    overlapped = f"{m.group(3)} of {m.group(4)} buckets sent during the backward pass"
else:
    m = re.search(r"([\d.e+-]+) ms in all, ([\d.e+-]+) ms waiting for the slowest process, ([\d.e+-]+) ms all-reducing", log)
    compute, wait, transfer = (float(m.group(i)) for i in (1, 2, 3)) if m else (float("nan"),) * 3
    step_ms, reduce_ms, overlapped = compute + wait + transfer, wait + transfer, "none (after the backward pass)"
params = re.search(r"([\d.]+)M parameters", open(f"{out}/one.log").read())
result = {
    "steps": steps,
    "one_process_samples_per_s": round(one["samples_per_s"], 1),
    "two_processes_samples_per_s": round(two["samples_per_s"], 1),
    "speedup": round(two["samples_per_s"] / one["samples_per_s"], 2),
    "step_ms": round(step_ms, 1),
    "allreduce_after_backward_ms_per_step": round(reduce_ms, 1),
    "allreduce_share_of_step": round(reduce_ms / step_ms, 3),
    "overlap": overlapped,
    "parameters_millions": float(params.group(1)) if params else None,
    "bucket_mb": float(sys.argv[3]),
}
json.dump(result, open(f"{out}/distributed.json", "w"), indent=2)
print(json.dumps(result, indent=2))
EOF
