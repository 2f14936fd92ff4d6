#!/usr/bin/env bash
# Speed on a shared machine (issue 35): dqe train and dqe score alone and beside N busy loops
# (one `while :; do :; done` shell per loop), under each OpenMP wait policy:
#
#   default     what dqe chooses when the user sets nothing: libgomp's spinning on a quiet
#               machine, OMP_WAIT_POLICY=PASSIVE beside busy processes (include/dqe/runtime.h,
#               choose_omp_wait_policy)
#   libgomp     libgomp's own spinning forced (GOMP_SPINCOUNT=300000), as before dqe chose
#   passive     OMP_WAIT_POLICY=PASSIVE (threads sleep at once)
#   threads1    --threads 1
#
# train: the 4x256 shape (intermediate 1024) from scratch, 60 steps, batch 32, max length 64;
#        the figure is the median samples/s over the steps (from train_log.jsonl's elapsed_s).
# score: that model scores dev.jsonl (batch 64); the figure is pairs/s over the scoring.
# Every figure is also given against "alone, default" of the same run: a fair share beside
# N busy loops on C cores is C / (C + N) of alone (0.5 for 2 loops on 2 cores). Beside busy
# loops one run varies by 2x with where the scheduler puts the threads, so each figure is the
# median of BENCH_REPS runs (default 3), the policies taken in turn within each repetition.
#
# Usage: scripts/bench/contention.sh OUT_DIR [BUSY_LOOPS]   (about 20 minutes on 2 cores)
# DQE=path/to/dqe skips the build. Run it on an otherwise quiet machine: it reports the load
# average it started with.
set -euo pipefail
trap 'echo "contention.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/contention.sh OUT_DIR [BUSY_LOOPS]}
loops=${2:-2}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
steps=${BENCH_STEPS:-60}
reps=${BENCH_REPS:-3}
for f in "$train" "$dev"; do [ -r "$f" ] || { echo "contention.sh: $f: not found" >&2; exit 1; }; done
source "$here/scripts/bench/dqe_binary.sh" build-bench
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work"
head -n 200 "$dev" > "$work/dev200.jsonl"
cores=$(nproc)
echo "== $cores cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $loops busy loops beside" >&2

busy_pids=()
start_busy() { for _ in $(seq "$1"); do sh -c 'while :; do :; done' & busy_pids+=($!); done; }
stop_busy() { [ ${#busy_pids[@]} -eq 0 ] || kill "${busy_pids[@]}" 2>/dev/null || true; wait "${busy_pids[@]}" 2>/dev/null || true; busy_pids=(); }
trap 'stop_busy' EXIT

# run_policy POLICY CMD...: the command under the policy's environment and flags.
run_policy() {
  local policy=$1; shift
  case $policy in
    default) env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$@" ;;
    libgomp) env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=300000 "$@" ;;
    passive) env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=PASSIVE "$@" ;;
    threads1) env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$@" --threads 1 ;;
  esac
}

# The model that score measures with, trained once, alone.
"$dqe" train --train "$train" --dev "$work/dev200.jsonl" --out "$work/model" --batch-size 32 --max-len 64 --layers 4 --hidden 256 \
  --heads 4 --intermediate 1024 --max-steps 20 --vocab-size 8000 --match-types off --seed 1 2> "$work/model.log" >/dev/null

train_rate() {  # train_rate NAME POLICY: median samples/s of one run
  local name=$1 policy=$2
  rm -rf "${work:?}/$name"
  run_policy "$policy" "$dqe" train --train "$train" --dev "$work/dev200.jsonl" --out "$work/$name" --batch-size 32 \
    --max-len 64 --layers 4 --hidden 256 --heads 4 --intermediate 1024 --max-steps "$steps" \
    --tokenizer "$work/model/best/vocab.txt" --match-types off --seed 1 2> "$work/$name.log" >/dev/null ||
    { echo "contention.sh: train $name failed; see $work/$name.log" >&2; return 1; }
  python3 - "$work/$name/train_log.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rates = []
for a, b in zip(rows, rows[1:]):
    dt = b["elapsed_s"] - a["elapsed_s"]
    if dt > 0:
        rates.append(32 / dt)
print(f"{statistics.median(rates):.1f}")
EOF
}

score_rate() {  # score_rate NAME POLICY: pairs/s of one scoring of dev.jsonl
  local name=$1 policy=$2 t0 t1 n
  n=$(grep -c . "$dev")
  t0=$(date +%s.%N)
  run_policy "$policy" "$dqe" score --model "$work/model/best" --input "$dev" --output "$work/$name.jsonl" \
    --batch-size 64 2> "$work/$name.log" ||
    { echo "contention.sh: score $name failed; see $work/$name.log" >&2; return 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$n / ($t1 - $t0):.1f}')"
}

results=$out/contention.tsv
printf 'command\tbusy_loops\tpolicy\trep\trate\n' > "$results"
for busy in 0 "$loops"; do
  start_busy "$busy"
  sleep 1
  for rep in $(seq "$reps"); do
    for policy in default libgomp passive threads1; do
      r=$(train_rate "train-$busy-$policy" "$policy") || exit 1
      printf 'train\t%s\t%s\t%s\t%s\n' "$busy" "$policy" "$rep" "$r" | tee -a "$results" >&2
      r=$(score_rate "score-$busy-$policy" "$policy") || exit 1
      printf 'score\t%s\t%s\t%s\t%s\n' "$busy" "$policy" "$rep" "$r" | tee -a "$results" >&2
    done
  done
  stop_busy
done

python3 - "$results" "$cores" "$loops" > "$out/contention.md" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
cores, loops = int(sys.argv[2]), int(sys.argv[3])
print(f"{cores} cores; fair share beside {loops} busy loops: {cores / (cores + loops):.2f} of alone; "
      "each figure the median of its runs (all runs in brackets)\n")
for command, unit in (("train", "samples/s"), ("score", "pairs/s")):
    groups = {}
    for r in rows:
        if r["command"] == command:
            groups.setdefault((r["busy_loops"], r["policy"]), []).append(float(r["rate"]))
    alone = statistics.median(groups[("0", "default")])
    print(f"| {command} | {unit} | against alone (default) | runs |\n|---|---|---|---|")
    for (busy, policy), rates in groups.items():
        where = "alone" if busy == "0" else f"beside {busy} busy loops"
        m = statistics.median(rates)
        print(f"| {where}, {policy} | {m:.1f} | {m / alone:.2f} | {', '.join(f'{x:.0f}' for x in rates)} |")
    print()
EOF
cat "$out/contention.md"
