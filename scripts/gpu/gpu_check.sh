#!/usr/bin/env bash
# GPU check (issue 3), for a machine with an NVIDIA GPU and a CUDA PyTorch (python3 -c 'import torch'):
#   1. builds dqe against the LibTorch inside that PyTorch wheel (build-cuda/);
#   2. runs the GPU tests (the fixture's logits on the GPU against the oracle; training on the
#      GPU, resuming there, and scoring its checkpoints on CPU and GPU);
#   3. trains BERT-base shape (12x768) for GPU_STEPS steps, batch 32, max length 128, with dqe
#      (bf16 autocast, dqe's default on a GPU, and fp32) and with the reference loop on the
#      same GPU (scripts/gpu/gpu_ref.py: bert_ref.py's model and loop moved to CUDA);
#   4. scores GPU_SCORE_LINES lines (dev.jsonl repeated) with that model, dqe against the
#      reference forward pass;
#   5. runs the whole model_tests and infer_tests suites, whose default device is now the GPU.
# Writes OUT_DIR/gpu_check.{json,md}, gpu_check.log, build.log and logs.tgz (every run's log).
# Ratios are the figures to read.
#
# Dependencies: scripts/setup/setup.sh's Debian packages, or, on a machine without apt (such as the
# device machines), the bundle that scripts/gpu/gpu_bundle.sh packs: its .debs are unpacked under
# a prefix in /tmp, never into /.
# Usage: scripts/gpu/gpu_check.sh OUT_DIR [BUNDLE_DIR]   (about 5 minutes on an H200 with 16 cores, the build included)
set -uo pipefail
out=${1:?usage: scripts/gpu/gpu_check.sh OUT_DIR [BUNDLE_DIR]}
here=$(cd "$(dirname "$0")/../.." && pwd)
bundle=${2:-$here/.gpu}
steps=${GPU_STEPS:-300}
lines=${GPU_SCORE_LINES:-50000}
py=${PYTHON:-python3}
limit=${GPU_STEP_TIMEOUT:-90}  # seconds for any one run: a hang must not eat the lease
mkdir -p "$out" && out=$(cd "$out" && pwd)
work=${GPU_WORK:-/tmp/dqe-gpu-work}
rm -rf "$work" && mkdir -p "$work"
note() { tee -a "$out/gpu_check.log"; }  # what goes to stdout also goes to the log
log() { echo "== $(date +%T) $*" | note >&2; }
run() { "$@" 2>&1 | note; return "${PIPESTATUS[0]}"; }
cd "$here"

log "machine"
run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
run "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI, "gpu", torch.cuda.is_available())'
run bash -c 'g++ --version | head -n1; cmake --version | head -n1; echo "cores $(nproc)"'

shared=$here/../shared
cmake_args=()
if [ -d "$bundle/debs" ]; then
  prefix=/tmp/dqe-deps
  rm -rf "$prefix" && mkdir -p "$prefix"
  for deb in "$bundle"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
  sed -i "s|^prefix=/usr|prefix=$prefix/usr|" "$prefix"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc "$prefix"/usr/share/pkgconfig/*.pc
  libz=$(ls /usr/lib/x86_64-linux-gnu/libz.so.1 /lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -n1)
  cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix/usr;$($py -c 'import torch;print(torch.utils.cmake_prefix_path)')"
               -DDQE_SPM_PREFIX="$bundle/sentencepiece" -DZLIB_INCLUDE_DIR="$prefix/usr/include"
               -DZLIB_LIBRARY="$libz")
  shared=$bundle/shared
else
  cmake_args+=(-DCMAKE_PREFIX_PATH="$($py -c 'import torch;print(torch.utils.cmake_prefix_path)')")
fi
[ -d /usr/local/cuda/bin ] && export PATH=$PATH:/usr/local/cuda/bin
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl

log "configure and build (build-cuda: dqe, base_tests, model_tests, infer_tests, integration_tests)"
t0=$(date +%s)
rm -f build-cuda/CMakeCache.txt  # the dependency prefix can move between runs
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DDQE_SHARED_DIR="$shared" "${cmake_args[@]}" > "$out/build.log" 2>&1 &&
  cmake --build build-cuda -j"$(nproc)" --target dqe base_tests model_tests infer_tests integration_tests -- -k 0 >> "$out/build.log" 2>&1
rc=$?
log "build exited $rc in $(( $(date +%s) - t0 )) s"
if [ $rc -ne 0 ]; then
  grep -E "error|Error|undefined reference" "$out/build.log" | head -n 40 | note
  exit 1
fi
dqe=$here/build-cuda/dqe
run "$dqe" --version

log "GPU tests (and which C++ runtime the binaries load)"
ldd "$dqe" | grep -E "libstdc|libgcc_s|libprotobuf|libtorch_cuda" | note
outcome() {  # outcome EXIT FILE: passed, skipped or failed
  if [ "$1" -ne 0 ]; then echo failed; elif grep -q "SKIPPED \]" "$2"; then echo skipped; else echo passed; fi
}
run build-cuda/base_tests --gtest_filter='Device.CudaLogitsOfTheFixtureMatchTheOracle' > "$work/core_gpu.txt"
core_gpu=$(outcome $? "$work/core_gpu.txt")
run build-cuda/integration_tests --gtest_filter='*Gpu*' > "$work/train_gpu.txt"
train_gpu=$(outcome $? "$work/train_gpu.txt")

shapeB=(--layers 12 --hidden 768 --heads 12 --intermediate 3072)
head -n 200 "$dev" > "$work/dev200.jsonl"
dqe_train() {  # dqe_train NAME ARGS...
  local name=$1; shift
  timeout "$limit" "$dqe" train --train "$train" --dev "$work/dev200.jsonl" --out "$work/$name" --batch-size 32 --max-len 128 \
    --max-steps "$steps" --warmup-ratio 0 --lr 1e-4 --vocab-size 8000 --match-types off "${shapeB[@]}" "$@" \
    > /dev/null 2> "$work/$name.log"
}
ref() {  # ref NAME ARGS...: the reference on the GPU, its JSON line in $work/NAME.json
  local name=$1; shift
  timeout "$limit" "$py" scripts/gpu/gpu_ref.py --ref "$shared/reference/bert_ref.py" "$@" > "$work/$name.json"
  note < "$work/$name.json"
}
dqe_score() {  # dqe_score NAME ARGS...: scores $work/score.jsonl with the 12x768 model
  local name=$1; shift
  timeout "$limit" "$dqe" score --model "$work/dB" --input "$work/score.jsonl" --output "$work/$name.jsonl" \
    --batch-size 256 --device cuda "$@" 2> "$work/$name.log"
  echo "dqe $name exit $?: $(grep "pairs/s" "$work/$name.log")" | note
}

log "matmul rate"
ref matmul matmul
log "train 12x768, $steps steps: dqe bf16 (auto), reference bf16 (inline and pretokenized)"
dqe_train dB --device cuda; echo "dqe train bf16 exit $?" | note
tail -n 3 "$work/dB.log" | note
log "dev200 RMSE of that model: CPU fp32, GPU fp32, GPU bf16"
for dp in cpu:fp32 cuda:fp32 cuda:bf16; do
  metrics=$work/eval_${dp/:/_}.json
  timeout "$limit" "$dqe" eval --model "$work/dB" --data "$work/dev200.jsonl" --device "${dp%%:*}" --precision "${dp##*:}" \
    --metrics-out "$metrics" > /dev/null 2>&1
  echo "$dp rmse $("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rmse"])' "$metrics" 2>&1)" | note
done
ref rB train --data "$train" --steps "$steps" --bf16
ref rBpre train --data "$train" --steps "$steps" --bf16 --pretokenized

log "score $lines lines with the 12x768 model: dqe bf16, reference bf16"
: > "$work/big.jsonl"
while [ "$(wc -l < "$work/big.jsonl")" -lt "$lines" ]; do cat "$dev" >> "$work/big.jsonl"; done
head -n "$lines" "$work/big.jsonl" > "$work/score.jsonl"
dqe_score score_bf16
ref rscore score --data "$work/score.jsonl" --limit "$lines" --batch 256 --bf16
ref rscorepre score --data "$work/score.jsonl" --limit "$lines" --batch 256 --bf16 --pretokenized

log "fp32: dqe train and score, reference train"
dqe_train dBfp32 --device cuda --precision fp32; echo "dqe train fp32 exit $?" | note
ref rBfp32 train --data "$train" --steps "$steps"
dqe_score score_fp32 --precision fp32

"$py" - "$work" "$out" "$steps" "$core_gpu" "$train_gpu" "$here/scripts/bench" <<'PY' 2>&1 | note
import json, sys
work, out, steps, core_gpu, train_gpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path.insert(0, sys.argv[6])
import bench_rates
def maybe(f, path, default=None):
    """f(path), or `default` where that run left nothing to read (it failed or timed out)."""
    try: return f(path)
    except (OSError, ValueError, IndexError, KeyError): return default
def load(name): return maybe(lambda p: json.load(open(p)), f"{work}/{name}.json", {})
def log_rate(run): return maybe(bench_rates.train_rate, f"{work}/{run}", (None, None))
def score_rate(name): return maybe(bench_rates.score_rate, f"{work}/{name}.log")
def ratio(a, b): return a / b if a and b else None
dB, tB = log_rate("dB"); dBf, _ = log_rate("dBfp32")
mm = load("matmul")
rB, rBpre, rBf = (load(k) for k in ("rB", "rBpre", "rBfp32"))
rs, rspre = (load(k) for k in ("rscore", "rscorepre"))
s16, s32 = score_rate("score_bf16"), score_rate("score_fp32")
seq = tB / dB if dB else None
flops = bench_rates.flops_per_token(12, 768, 3072, seq or 0)
r = {"gpu": mm.get("device"), "steps": steps,
     "gpu_tests": {"Device.CudaLogitsOfTheFixtureMatchTheOracle": core_gpu,
                   "TrainTest.TrainsOnTheGpuAndItsCheckpointsScoreTheSameOnTheCpu": train_gpu},
     "matmul_tflops": {k: mm.get(k) for k in ("bf16_tflops", "fp32_tflops")},
     "train_12x768": {"dqe_bf16_samples_per_s": dB, "dqe_fp32_samples_per_s": dBf,
                      "ref_bf16_samples_per_s": rB.get("samples_per_s"), "ref_bf16_pretokenized_samples_per_s": rBpre.get("samples_per_s"),
                      "ref_fp32_samples_per_s": rBf.get("samples_per_s"),
                      "ratio_bf16": ratio(dB, rB.get("samples_per_s")), "ratio_bf16_vs_pretokenized": ratio(dB, rBpre.get("samples_per_s")),
                      "ratio_fp32": ratio(dBf, rBf.get("samples_per_s")), "mean_padded_len": seq,
                      "dqe_bf16_tflops": flops * tB / 1e12 if tB else None},
     "score_12x768": {"dqe_bf16_pairs_per_s": s16, "dqe_fp32_pairs_per_s": s32,
                      "ref_bf16_pairs_per_s": rs.get("pairs_per_s"), "ref_bf16_pretokenized_pairs_per_s": rspre.get("pairs_per_s"),
                      "ratio_bf16": ratio(s16, rs.get("pairs_per_s")), "ratio_bf16_vs_pretokenized": ratio(s16, rspre.get("pairs_per_s"))}}
json.dump(r, open(f"{out}/gpu_check.json", "w"), indent=2)
f = lambda x, p=1: "-" if x is None else f"{x:.{p}f}"
t, s = r["train_12x768"], r["score_12x768"]
md = [f"GPU check on {r['gpu']}: {steps} training steps, batch 32, max length 128",
      "",
      f"GPU tests: fixture logits against the oracle {core_gpu}; train, resume and score on GPU and CPU {train_gpu}",
      "",
      "| benchmark | dqe | reference | ratio |", "|---|---|---|---|",
      f"| train 12x768, samples/s, bf16 autocast | {f(t['dqe_bf16_samples_per_s'])} | {f(t['ref_bf16_samples_per_s'])} | {f(t['ratio_bf16'], 2)}x |",
      f"| same, reference pre-tokenized | | {f(t['ref_bf16_pretokenized_samples_per_s'])} | {f(t['ratio_bf16_vs_pretokenized'], 2)}x |",
      f"| train 12x768, samples/s, fp32 | {f(t['dqe_fp32_samples_per_s'])} | {f(t['ref_fp32_samples_per_s'])} | {f(t['ratio_fp32'], 2)}x |",
      f"| score 12x768, pairs/s, bf16 | {f(s['dqe_bf16_pairs_per_s'], 0)} | {f(s['ref_bf16_pairs_per_s'], 0)} | {f(s['ratio_bf16'], 2)}x |",
      f"| same, reference pre-tokenized | | {f(s['ref_bf16_pretokenized_pairs_per_s'], 0)} | {f(s['ratio_bf16_vs_pretokenized'], 2)}x |",
      f"| dqe score 12x768, pairs/s, fp32 | {f(s['dqe_fp32_pairs_per_s'], 0)} | | |",
      "",
      f"dqe bf16 training: {f(t['dqe_bf16_tflops'])} TFLOP/s (mean padded length {f(seq)}); "
      f"matmul 8192^3: bf16 {f(mm.get('bf16_tflops'))}, fp32 {f(mm.get('fp32_tflops'))} TFLOP/s"]
open(f"{out}/gpu_check.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY

for suite in model_tests infer_tests; do
  log "$suite, all of them, on the GPU by default"
  timeout 120 build-cuda/$suite > "$work/${suite}_all.txt" 2>&1
  rc=$?
  tail -n 25 "$work/${suite}_all.txt" | note
  if [ $rc -ge 128 ] && command -v cuda-gdb > /dev/null; then
    failed=$(grep "^\[ RUN" "$work/${suite}_all.txt" | tail -n 1 | awk '{print $NF}')
    log "$suite died in $failed (exit $rc): its backtrace"
    timeout 90 cuda-gdb -batch -ex run -ex bt --args build-cuda/$suite --gtest_filter="$failed" 2>&1 |
      grep -E "^#|signal" | head -n 30 | note
  fi
done
(cd "$work" && find . -maxdepth 2 \( -name '*.log' -o -name '*.json' -o -name '*.txt' -o -name train_log.jsonl \) -print0 |
  tar czf "$out/logs.tgz" --null -T -)
log "done"
