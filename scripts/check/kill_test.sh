#!/usr/bin/env bash
# Fault test: kills `dqe train` with SIGKILL at random moments (at least KILLS times), resumes
# after each kill, checks that every checkpoint on disk loads, and that the run ends with
# the same metrics as an uninterrupted one. Also checks SIGINT/SIGTERM: exit 130/143 with a
# checkpoint written, in a fresh run, in a resumed run, in a LoRA, an AdaLoRA and a bottleneck
# adapter run (and their resumes) and in pretraining (and its resume), each ending with the
# uninterrupted run's metrics; that the wait for an output FIFO's reader ends on SIGTERM
# and SIGINT; and that SIGTERM during the detection statistics at a run's end is obeyed. Usage: scripts/check/kill_test.sh DQE_BINARY [KILLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
dqe=$(realpath "${1:?usage: kill_test.sh DQE_BINARY [KILLS]}")
kills_wanted=${2:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --max-steps 900 --eval-every 25
      --patience 0 --threads 1 --seed 11)

echo "[kill-test] uninterrupted reference run"
"$dqe" train "${args[@]}" --out "$work/ref" >/dev/null 2>"$work/ref.log"
"$dqe" eval --model "$work/ref" --data data/dev.jsonl --metrics-out "$work/ref.json" >/dev/null 2>&1

echo "[kill-test] killing with SIGKILL at random moments"
RANDOM=7
kills=0 starts=0
finished() { [ -f "$work/run/last/trainer_state.json" ] && grep -q '"finished": true' "$work/run/last/trainer_state.json"; }
while ! finished; do
  # As a restart loop would: --resume once the run exists (whatever a kill left of it: no
  # checkpoint yet, last.old/ between two renames, best/ without last/ at the first checkpoint).
  resume=()
  [ -d "$work/run" ] && resume=(--resume)
  "$dqe" train "${args[@]}" --out "$work/run" "${resume[@]}" >/dev/null 2>>"$work/run.log" &
  pid=$!
  starts=$((starts + 1))
  if [ "$kills" -lt "$kills_wanted" ]; then
    # 0.5 to 3.5 s: start-up, data loading, training steps and checkpoint writes all get hit.
    sleep "$((RANDOM % 4)).$((RANDOM % 10))"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  fi
  wait "$pid" 2>/dev/null || true
  # Whatever the kill interrupted, each checkpoint on disk must load.
  for ckpt in last best; do
    if [ -d "$work/run/$ckpt" ] || [ -d "$work/run/$ckpt.old" ]; then
      if ! "$dqe" eval --model "$work/run/$ckpt" --data data/dev.jsonl >/dev/null 2>"$work/eval.err"; then
        # A kill between the two renames leaves only $ckpt.old; loading the run dir recovers it.
        "$dqe" eval --model "$work/run" --data data/dev.jsonl >/dev/null 2>>"$work/eval.err" || {
          echo "[kill-test] FAILED: $ckpt checkpoint does not load after kill $kills:"; cat "$work/eval.err"; exit 1; }
      fi
    fi
  done
  if [ "$starts" -gt $((kills_wanted * 4)) ]; then
    echo "[kill-test] FAILED: run never finished; the end of its log:"; tail -n 20 "$work/run.log"; ls -la "$work/run"; exit 1
  fi
done
"$dqe" eval --model "$work/run" --data data/dev.jsonl --metrics-out "$work/run.json" >/dev/null 2>&1
ref=$(grep -o '"rmse": [0-9.e-]*' "$work/ref.json" | head -1 | cut -d' ' -f2)
got=$(grep -o '"rmse": [0-9.e-]*' "$work/run.json" | head -1 | cut -d' ' -f2)
steps=$(grep -c . "$work/run/train_log.jsonl")
echo "[kill-test] $kills kills survived over $starts starts; dev rmse $got (uninterrupted $ref); $steps log lines"
awk -v a="$ref" -v b="$got" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-5) }' || {
  echo "[kill-test] FAILED: final metrics differ"; exit 1; }
[ "$steps" -eq 900 ] || { echo "[kill-test] FAILED: train_log.jsonl has $steps lines, expected 900"; exit 1; }

echo "[kill-test] SIGINT and SIGTERM"
# signal_then_expect SIGNAL WANT_CODE SLEEP LOG CMD...: starts CMD, signals it after SLEEP s,
# and checks the exit code and the resume hint.
signal_then_expect() {
  local sig=$1 want=$2 wait_s=$3 log=$4; shift 4
  "$@" >/dev/null 2>"$log" &
  local pid=$! code=0
  sleep "$wait_s"
  kill -s "$sig" "$pid"
  wait "$pid" || code=$?
  [ "$code" -eq "$want" ] || { echo "[kill-test] FAILED: SIG$sig exit code $code, expected $want: $*"; cat "$log"; exit 1; }
  grep -q -- "--resume" "$log" || { echo "[kill-test] FAILED: no resume hint after SIG$sig: $*"; cat "$log"; exit 1; }
}
rmse_of() { "$dqe" eval --model "$1" --data data/dev.jsonl --metrics-out "$1.json" >/dev/null 2>&1;
            grep -o '"rmse": [0-9.e-]*' "$1.json" | head -1 | cut -d' ' -f2; }
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-5) }'; }
for sig in INT TERM; do
  rm -rf "$work/sig"
  want=$([ "$sig" = INT ] && echo 130 || echo 143)
  signal_then_expect "$sig" "$want" 3 "$work/sig.log" "$dqe" train "${args[@]}" --out "$work/sig"
  # A signal during the resumed run: it too stops after its step with a checkpoint.
  signal_then_expect "$sig" "$want" 3 "$work/sig.log" "$dqe" train "${args[@]}" --out "$work/sig" --resume
  "$dqe" train "${args[@]}" --out "$work/sig" --resume >/dev/null 2>&1
  got=$(rmse_of "$work/sig")
  same "$ref" "$got" || { echo "[kill-test] FAILED: after SIG$sig twice, dev rmse $got, uninterrupted $ref"; exit 1; }
  echo "[kill-test] SIG$sig: exit $want in a run and in its resumption, resumed to the same rmse"
done

echo "[kill-test] LoRA on the reference run: SIGTERM in a run and in its resumption"
largs=(--config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --max-steps 600 --eval-every 100
       --patience 0 --threads 1 --seed 11 --init "$work/ref" --peft lora --lr 2e-3)
"$dqe" train "${largs[@]}" --out "$work/lref" >/dev/null 2>&1
signal_then_expect TERM 143 3 "$work/lora.log" "$dqe" train "${largs[@]}" --out "$work/lora"
signal_then_expect TERM 143 3 "$work/lora.log" "$dqe" train "${largs[@]}" --out "$work/lora" --resume
"$dqe" train "${largs[@]}" --out "$work/lora" --resume >/dev/null 2>&1
[ -f "$work/lora/best/adapter_model.safetensors" ] || { echo "[kill-test] FAILED: the LoRA run saved no adapter"; exit 1; }
lref=$(rmse_of "$work/lref")
lgot=$(rmse_of "$work/lora")
same "$lref" "$lgot" || { echo "[kill-test] FAILED: the LoRA run resumed to dev rmse $lgot, uninterrupted $lref"; exit 1; }
echo "[kill-test] LoRA: exit 143 in a run and in its resumption, resumed to the same rmse ($lgot)"

echo "[kill-test] bottleneck adapters on the reference run: SIGTERM in a run and in its resumption"
aargs=(--config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --max-steps 600 --eval-every 100
       --patience 0 --threads 1 --seed 11 --init "$work/ref" --peft adapter --adapter-size 16 --lr 2e-3)
"$dqe" train "${aargs[@]}" --out "$work/aref" >/dev/null 2>&1
signal_then_expect TERM 143 3 "$work/adapter.log" "$dqe" train "${aargs[@]}" --out "$work/adapter"
signal_then_expect TERM 143 3 "$work/adapter.log" "$dqe" train "${aargs[@]}" --out "$work/adapter" --resume
"$dqe" train "${aargs[@]}" --out "$work/adapter" --resume >/dev/null 2>&1
[ -f "$work/adapter/best/adapter_model.safetensors" ] || { echo "[kill-test] FAILED: the adapter run saved no adapter"; exit 1; }
aref=$(rmse_of "$work/aref")
agot=$(rmse_of "$work/adapter")
same "$aref" "$agot" || { echo "[kill-test] FAILED: the adapter run resumed to dev rmse $agot, uninterrupted $aref"; exit 1; }
echo "[kill-test] bottleneck adapters: exit 143 in a run and in its resumption, resumed to the same rmse ($agot)"

echo "[kill-test] AdaLoRA on the reference run: SIGTERM in a run and in its resumption"
dargs=(--config configs/tiny.json --train data/train.jsonl --dev data/dev.jsonl --max-steps 600 --eval-every 100
       --patience 0 --threads 1 --seed 11 --init "$work/ref" --peft adalora --lr 2e-3 --adalora-delta-t 10)
"$dqe" train "${dargs[@]}" --out "$work/daref" >/dev/null 2>&1
signal_then_expect TERM 143 3 "$work/adalora.log" "$dqe" train "${dargs[@]}" --out "$work/adalora"
signal_then_expect TERM 143 3 "$work/adalora.log" "$dqe" train "${dargs[@]}" --out "$work/adalora" --resume
"$dqe" train "${dargs[@]}" --out "$work/adalora" --resume >/dev/null 2>&1
[ -f "$work/adalora/last/adalora_state.safetensors" ] || { echo "[kill-test] FAILED: the AdaLoRA run saved no allocator state"; exit 1; }
cmp -s "$work/daref/last/adapter_config.json" "$work/adalora/last/adapter_config.json" ||
  { echo "[kill-test] FAILED: the AdaLoRA run resumed to another rank pattern"; exit 1; }
daref=$(rmse_of "$work/daref")
dagot=$(rmse_of "$work/adalora")
same "$daref" "$dagot" || { echo "[kill-test] FAILED: the AdaLoRA run resumed to dev rmse $dagot, uninterrupted $daref"; exit 1; }
echo "[kill-test] AdaLoRA: exit 143 in a run and in its resumption, resumed to the same rmse ($dagot) and ranks"

echo "[kill-test] pretraining: SIGINT, then SIGTERM during the resumption"
sed -n 's/.*"title": "\([^"]*\)".*/\1/p' data/train.jsonl > "$work/corpus.txt"
pargs=(--corpus "$work/corpus.txt" --layers 2 --hidden 128 --heads 2 --intermediate 256 --vocab-size 500 --max-len 32
       --max-steps 600 --eval-every 150 --chunk-lines 700 --batch-size 32 --threads 1 --seed 5)
"$dqe" pretrain "${pargs[@]}" --out "$work/pref" >/dev/null 2>&1
signal_then_expect INT 130 3 "$work/pre.log" "$dqe" pretrain "${pargs[@]}" --out "$work/pre"
signal_then_expect TERM 143 2 "$work/pre.log" "$dqe" pretrain "${pargs[@]}" --out "$work/pre" --resume
"$dqe" pretrain "${pargs[@]}" --out "$work/pre" --resume >/dev/null 2>&1
last_loss() { grep -o '"mlm_loss":[0-9.e-]*' "$1/eval_log.jsonl" | tail -1 | cut -d: -f2; }
ref_loss=$(last_loss "$work/pref")
got_loss=$(last_loss "$work/pre")
same "$ref_loss" "$got_loss" || { echo "[kill-test] FAILED: pretraining resumed to held-back loss $got_loss, uninterrupted $ref_loss"; exit 1; }
echo "[kill-test] pretraining: exit 130 and 143, resumed to the same held-back loss ($got_loss)"
echo "[kill-test] an output FIFO with no reader: the wait for one ends on SIGTERM and SIGINT"
mkfifo "$work/fifo"
for case in "TERM 143 score --model $work/ref --input data/dev.jsonl --output $work/fifo" \
            "INT 130 eval --model $work/ref --data data/dev.jsonl --metrics-out $work/fifo" \
            "TERM 143 score --model $work/ref --input data/dev.jsonl --output - --rejects $work/fifo"; do
  read -r sig want cmd <<<"$case"
  # shellcheck disable=SC2086
  timeout -s KILL 120 "$dqe" $cmd >/dev/null 2>"$work/fifo.log" &
  pid=$!
  # Signalled once it says it waits (after 2 s of waiting): eval opens its output at the end.
  for _ in $(seq 900); do grep -q "waiting for a reader" "$work/fifo.log" && break; sleep 0.1; done
  kill -s "$sig" "$pid" 2>/dev/null || true
  code=0
  wait "$pid" || code=$?
  [ "$code" -eq "$want" ] || { echo "[kill-test] FAILED: SIG$sig while waiting for a FIFO's reader: exit $code, expected $want: dqe $cmd"; cat "$work/fifo.log"; exit 1; }
  grep -q "waiting for a reader" "$work/fifo.log" || { echo "[kill-test] FAILED: no word of the wait: dqe $cmd"; cat "$work/fifo.log"; exit 1; }
done
echo "[kill-test] FIFO: exit 143 and 130, each saying what it waited for"
echo "[kill-test] SIGTERM during the detection statistics at the end of a run: exit 143, --resume writes them"
for _ in $(seq 40); do cat data/dev.jsonl; done > "$work/big.jsonl"
cargs=(--config configs/tiny.json --train "$work/big.jsonl" --dev "$work/big.jsonl" --max-steps 3 --eval-every 3
       --threads 1 --out "$work/calib")
"$dqe" train "${cargs[@]}" >/dev/null 2>"$work/calib.log" &
pid=$!
# The run's last checkpoint says it finished; then comes the calibration over 24,000 rows (seconds).
for _ in $(seq 900); do grep -qs '"finished": true' "$work/calib/last/trainer_state.json" && break; sleep 0.1; done
sleep 0.2
kill -s TERM "$pid"
code=0
wait "$pid" || code=$?
[ "$code" -eq 143 ] && grep -q "before the detection statistics were written" "$work/calib.log" ||
  { echo "[kill-test] FAILED: SIGTERM during the calibration: exit $code"; cat "$work/calib.log"; exit 1; }
[ ! -e "$work/calib/best/detect_stats.safetensors" ] || { echo "[kill-test] FAILED: statistics written after the stop"; exit 1; }
"$dqe" train "${cargs[@]}" --resume >/dev/null 2>&1
[ -f "$work/calib/best/detect_stats.safetensors" ] || { echo "[kill-test] FAILED: --resume wrote no statistics"; exit 1; }
echo "[kill-test] calibration: exit 143, and --resume wrote the statistics"
echo "[kill-test] ok"
