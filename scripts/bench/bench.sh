#!/usr/bin/env bash
# Speed benchmark (issue 3): dqe against the reference Python loop
# (../shared/reference/bert_ref.py on Debian's python3-torch, the same LibTorch 1.13) on
# the same machine, data, shapes and threads, in one go. Ratios are the figures to read:
# the machine is shared and noisy.
#
#   train  4x256 (intermediate 1024), batch 32, max length 128, 2 threads, Home Depot train.jsonl:
#          dqe (default precision: bf16 autocast on CPUs with avx512_bf16, and --precision fp32)
#          against the reference with dynamic padding and with --pad-to-max; then BERT-base
#          shape (12x768) for a few steps, as FLOP/s against the matmul peak
#   score  pairs/s of dqe score (fp32 and bf16) against the reference forward pass, 4x256;
#          peak RSS of dqe score on 100k and 1M lines (dev.jsonl repeated, a 2x64 model)
#   matmul fp32 and bf16 GFLOP/s of the same LibTorch (scripts/bench/bench_matmul.py)
#   quality the same short fine-tuning in fp32 and in bf16: dev RMSE side by side
#
# Both sides run with OPENBLAS_CORETYPE set as dqe sets it (OpenBLAS 0.3.21 mistakes this
# CPU for a Prescott otherwise, 5x slower), so the comparison is of the loops, not of that.
# Writes OUT_DIR/bench.json and OUT_DIR/bench.md. Usage: scripts/bench/bench.sh OUT_DIR (about 15 min)
set -euo pipefail
trap 'echo "bench.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/bench.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
ref=$shared/reference/bert_ref.py
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
threads=${BENCH_THREADS:-2}
steps=${BENCH_STEPS:-40}
base_steps=${BENCH_BASE_STEPS:-4}
for f in "$ref" "$train" "$dev"; do [ -r "$f" ] || { echo "bench.sh: $f: not found" >&2; exit 1; }; done

bash "$here/scripts/setup/setup.sh" python3-torch python3-numpy time
source "$here/scripts/bench/dqe_binary.sh" build-bench
# The core dqe picks (it logs it); the reference gets the same.
core=$("$dqe" --version | sed -n 's/.*OpenBLAS [^ ]* .* \(Cooperlake\|SkylakeX\|Haswell\|Zen\|Prescott\) .*/\1/p' | head -n1)
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-${core:-Haswell}}
py=/usr/bin/python3

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work"
head -n 200 "$dev" > "$work/dev200.jsonl"
log() { echo "== $*" >&2; }

shape4=(--layers 4 --hidden 256 --heads 4 --intermediate 1024)
shapeB=(--layers 12 --hidden 768 --heads 12 --intermediate 3072)
dqe_train() {  # dqe_train NAME STEPS ARGS...: writes $work/NAME (a run dir)
  local name=$1 n=$2; shift 2
  "$dqe" train --train "$train" --dev "$work/dev200.jsonl" --out "$work/$name" --batch-size 32 --max-len 128 \
    --threads "$threads" --max-steps "$n" --warmup-ratio 0 --lr 1e-4 --vocab-size 8000 --match-types off "$@" \
    2> "$work/$name.log" >/dev/null
}

log "matmul peak"
$py "$here/scripts/bench/bench_matmul.py" --threads "$threads" > "$work/matmul.json"

log "train 4x256: dqe (default precision), dqe fp32, reference dynamic, reference pad-to-max"
dqe_train d4 "$steps" "${shape4[@]}"
dqe_train d4fp32 "$steps" "${shape4[@]}" --precision fp32
$py "$ref" train --data "$train" --num-labels 1 --batch 32 --max-len 128 --threads "$threads" --steps "$steps" \
  --layers 4 --hidden 256 --heads 4 > "$work/r4.json"
$py "$ref" train --data "$train" --num-labels 1 --batch 32 --max-len 128 --threads "$threads" --steps "$steps" \
  --layers 4 --hidden 256 --heads 4 --pad-to-max > "$work/r4pad.json"

log "train 12x768 for $base_steps steps: dqe (default), dqe fp32, reference"
dqe_train dB "$base_steps" "${shapeB[@]}"
dqe_train dBfp32 "$base_steps" "${shapeB[@]}" --precision fp32
$py "$ref" train --data "$train" --num-labels 1 --batch 32 --max-len 128 --threads "$threads" --steps "$base_steps" \
  --layers 12 --hidden 768 --heads 12 > "$work/rB.json"

log "score 4x256: dqe fp32, dqe bf16, reference forward"
cat "$dev" "$dev" "$dev" | awk 'NR <= 20000' > "$work/score20k.jsonl"  # awk reads on: no SIGPIPE
for p in fp32 bf16; do
  /usr/bin/time -f "%e %M" -o "$work/score_$p.time" "$dqe" score --model "$work/d4" --input "$work/score20k.jsonl" \
    --output "$work/scored_$p.jsonl" --precision "$p" --threads "$threads" --batch-size 64 2> "$work/score_$p.log"
done
$py "$ref" score --data "$work/score20k.jsonl" --limit 20000 --batch 64 --max-len 128 --threads "$threads" \
  --layers 4 --hidden 256 --heads 4 > "$work/rscore.json"

log "score memory: 100k and 1M lines with a 2x64 model"
dqe_train tiny 20 --layers 2 --hidden 64 --heads 2 --intermediate 256
: > "$work/big.jsonl"
while [ "$(wc -l < "$work/big.jsonl")" -lt 1000000 ]; do cat "$dev" >> "$work/big.jsonl"; done
head -n 1000000 "$work/big.jsonl" > "$work/1m.jsonl" && rm "$work/big.jsonl"
head -n 100000 "$work/1m.jsonl" > "$work/100k.jsonl"
for n in 100k 1m; do
  /usr/bin/time -f "%e %M" -o "$work/rss_$n.time" "$dqe" score --model "$work/tiny" --input "$work/$n.jsonl" \
    --output "$work/scored_$n.jsonl.gz" --threads "$threads" 2> "$work/rss_$n.log"
  rm -f "$work/scored_$n.jsonl.gz"
done

log "quality: the same fine-tuning in fp32 and bf16"
for p in fp32 bf16; do
  "$dqe" train --train "$train" --dev "$dev" --out "$work/q_$p" --config "$here/configs/tiny.json" --vocab-size 8000 \
    --max-steps "${BENCH_QUALITY_STEPS:-1500}" --eval-every 500 --patience 0 --lr 5e-4 --threads "$threads" \
    --precision "$p" 2> "$work/q_$p.log" >/dev/null
  "$dqe" eval --model "$work/q_$p" --data "$dev" --metrics-out "$work/q_$p.json" --precision fp32 >/dev/null 2>&1
done

$py - "$work" "$out" "$threads" "$here/scripts/bench" <<'PY'
import json, sys
work, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
import bench_rates
from bench_rates import flops_per_token
def log_rate(run, skip=3):
    return bench_rates.train_rate(f"{work}/{run}", skip)
mm = json.load(open(f"{work}/matmul.json"))
ref = {k: json.load(open(f"{work}/{k}.json")) for k in ("r4", "r4pad", "rB", "rscore")}
d4, _ = log_rate("d4"); d4f, _ = log_rate("d4fp32")
dB, tB = log_rate("dB", 1); dBf, tBf = log_rate("dBfp32", 1)
seq = tB / dB  # mean padded length
fB = flops_per_token(12, 768, 3072, seq) * tB / 1e9
fBf = flops_per_token(12, 768, 3072, seq) * tBf / 1e9
def timed(name):
    wall, rss = open(f"{work}/{name}.time").read().split()
    return float(wall), int(rss) / 1024
def score_rate(name):
    return bench_rates.score_rate(f"{work}/{name}.log")
s32, s16 = score_rate("score_fp32"), score_rate("score_bf16")
rss100, rss1m = timed("rss_100k")[1], timed("rss_1m")[1]
q32 = json.load(open(f"{work}/q_fp32.json"))["rmse"]; q16 = json.load(open(f"{work}/q_bf16.json"))["rmse"]
r = {
  "threads": threads,
  "train_4x256": {"dqe_samples_per_s": d4, "dqe_fp32_samples_per_s": d4f,
                  "ref_dynamic_samples_per_s": ref["r4"]["samples_per_s"], "ref_pad128_samples_per_s": ref["r4pad"]["samples_per_s"],
                  "ratio_vs_ref_dynamic": d4 / ref["r4"]["samples_per_s"], "ratio_vs_ref_pad128": d4 / ref["r4pad"]["samples_per_s"],
                  "fp32_ratio_vs_ref_dynamic": d4f / ref["r4"]["samples_per_s"], "fp32_ratio_vs_ref_pad128": d4f / ref["r4pad"]["samples_per_s"]},
  "train_12x768": {"dqe_samples_per_s": dB, "dqe_fp32_samples_per_s": dBf, "ref_samples_per_s": ref["rB"]["samples_per_s"],
                   "mean_padded_len": seq, "dqe_gflops": fB, "dqe_fp32_gflops": fBf,
                   "matmul_fp32_gflops": mm["fp32_best_gflops"], "matmul_bf16_gflops": mm["bf16_best_gflops"],
                   "fp32_fraction_of_fp32_peak": fBf / mm["fp32_best_gflops"], "bf16_fraction_of_fp32_peak": fB / mm["fp32_best_gflops"],
                   "bf16_fraction_of_bf16_peak": fB / mm["bf16_best_gflops"]},
  "score_4x256": {"dqe_fp32_pairs_per_s": s32, "dqe_bf16_pairs_per_s": s16, "ref_pairs_per_s": ref["rscore"]["pairs_per_s"],
                  "fp32_ratio": s32 / ref["rscore"]["pairs_per_s"], "bf16_ratio": s16 / ref["rscore"]["pairs_per_s"]},
  "score_memory_2x64": {"rss_mb_100k": rss100, "rss_mb_1m": rss1m, "ratio": rss1m / rss100,
                        "pairs_per_s_1m": score_rate("rss_1m")},
  "quality_bf16": {"dev_rmse_fp32": q32, "dev_rmse_bf16": q16, "relative_diff": q16 / q32 - 1},
  "matmul": mm,
}
json.dump(r, open(f"{out}/bench.json", "w"), indent=2)
t, b, s, m, q = r["train_4x256"], r["train_12x768"], r["score_4x256"], r["score_memory_2x64"], r["quality_bf16"]
md = f"""| benchmark ({threads} threads) | dqe | reference | ratio | target |
|---|---|---|---|---|
| train 4x256, samples/s, vs dynamic padding | {t['dqe_samples_per_s']:.1f} | {t['ref_dynamic_samples_per_s']:.1f} | {t['ratio_vs_ref_dynamic']:.2f}x | 2x |
| train 4x256, samples/s, vs padding to 128 | {t['dqe_samples_per_s']:.1f} | {t['ref_pad128_samples_per_s']:.1f} | {t['ratio_vs_ref_pad128']:.2f}x | 4x |
| train 4x256 with --precision fp32, vs dynamic / pad-128 | {t['dqe_fp32_samples_per_s']:.1f} | | {t['fp32_ratio_vs_ref_dynamic']:.2f}x / {t['fp32_ratio_vs_ref_pad128']:.2f}x | |
| train 12x768, samples/s | {b['dqe_samples_per_s']:.2f} (fp32 {b['dqe_fp32_samples_per_s']:.2f}) | {b['ref_samples_per_s']:.2f} | {b['dqe_samples_per_s'] / b['ref_samples_per_s']:.2f}x | |
| train 12x768, GFLOP/s / fp32 matmul peak {b['matmul_fp32_gflops']:.0f} | {b['dqe_gflops']:.0f} (fp32 {b['dqe_fp32_gflops']:.0f}) | | {b['bf16_fraction_of_fp32_peak']:.0%} (fp32 {b['fp32_fraction_of_fp32_peak']:.0%}) | 50% |
| score 4x256, pairs/s, fp32 / bf16 | {s['dqe_fp32_pairs_per_s']:.0f} / {s['dqe_bf16_pairs_per_s']:.0f} | {s['ref_pairs_per_s']:.0f} | {s['fp32_ratio']:.2f}x / {s['bf16_ratio']:.2f}x | 3x |
| score peak RSS, 1M vs 100k lines (MB) | {m['rss_mb_1m']:.0f} vs {m['rss_mb_100k']:.0f} | | {m['ratio']:.2f} | <= 1.10 |
| dev RMSE after the same fine-tuning, bf16 vs fp32 | {q['dev_rmse_bf16']:.4f} | {q['dev_rmse_fp32']:.4f} (fp32) | {q['relative_diff']:+.2%} | within 1% |

Matmul peak of this LibTorch: fp32 {mm['fp32_best_gflops']:.0f} GFLOP/s, bf16 {mm['bf16_best_gflops']:.0f} GFLOP/s."""
open(f"{out}/bench.md", "w").write(md + "\n")
print(md)
PY
rm -f "$work"/*.jsonl "$work"/*.jsonl.gz
