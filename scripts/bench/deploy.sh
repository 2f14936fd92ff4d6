#!/usr/bin/env bash
# Deployment on Home Depot (issue 18): an ensemble teacher, one fine-tune, students distilled from
# the ensemble (4x256 from the encoder, and 2 layers of it: the bottom two, or every other one),
# and the student's int8, bf16 and pruned exports (bottom or alternate layers kept). For each: dev RMSE and Spearman (dqe eval), size on disk of the model's files,
# scoring pairs/s of `dqe score` on dev at 2 threads in fp32 (wall time of the command, loading
# included) and its peak RSS.
#
# TEACHERS="DIR DIR ...": fine-tuned models to ensemble (default: three fine-tunes from ENCODER,
#   seeds 1-3, --max-steps TEACHER_STEPS (default 600)). ENCODER: the pretrained encoder the
#   teachers and students start from (default ../bench/peft/pretrain/best, peft.sh's).
# STUDENT_STEPS (default 600): the students' --max-steps; DISTILL_ARGS adds flags to them
#   (e.g. "--distill-alpha 0.8"). UNLABELED=F adds --unlabeled F to the students.
# TRAIN_LINES, DEV_LINES: use only the first N lines of train and dev (a reduced run).
# Leaves OUT_DIR/deploy.md and OUT_DIR/deploy.json. Usage: scripts/bench/deploy.sh OUT_DIR
set -euo pipefail
trap 'echo "deploy.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/deploy.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
for f in "$train" "$dev"; do [ -r "$f" ] || { echo "deploy.sh: $f: not found" >&2; exit 1; }; done
source "$here/scripts/bench/dqe_binary.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)
# A reduced run: the first TRAIN_LINES training pairs (what the teachers label and the students
# learn) and DEV_LINES dev pairs (what every model is measured on); default all.
if [ -n "${TRAIN_LINES:-}" ]; then head -n "$TRAIN_LINES" "$train" > "$out/train.jsonl"; train=$out/train.jsonl; fi
if [ -n "${DEV_LINES:-}" ]; then head -n "$DEV_LINES" "$dev" > "$out/dev.jsonl"; dev=$out/dev.jsonl; fi
encoder=${ENCODER:-$here/../bench/peft/pretrain/best}
ft=(--config "$here/configs/quality-finetune.json" --train "$train" --dev "$dev" --eval-every 0 --patience 0)

read -r -a teachers <<< "${TEACHERS:-}"
if [ ${#teachers[@]} -eq 0 ]; then
  for seed in 1 2 3; do
    t=$out/teacher-$seed
    [ -f "$t/best/config.json" ] || "$dqe" train "${ft[@]}" --init "$encoder" --out "$t" --seed "$seed" \
      --max-steps "${TEACHER_STEPS:-600}" 2> "$out/teacher-$seed.log"
    teachers+=("$t")
  done
fi
mkdir -p "$out/ensemble"
/usr/bin/python3 -c 'import json,sys; json.dump({"members": sys.argv[2:]}, open(sys.argv[1], "w"))' \
  "$out/ensemble/ensemble.json" "${teachers[@]}"

teacher_flags=()
for t in "${teachers[@]}"; do teacher_flags+=(--teacher "$t"); done
unlabeled=()
[ -n "${UNLABELED:-}" ] && unlabeled=(--unlabeled "$UNLABELED")
student() {  # NAME FLAGS...
  local name=$1; shift
  [ -f "$out/$name/best/config.json" ] && return 0
  rm -rf "$out/$name"
  "$dqe" train "${ft[@]}" --init "$encoder" --out "$out/$name" --seed 42 --max-steps "${STUDENT_STEPS:-600}" \
    "${teacher_flags[@]}" "${unlabeled[@]}" ${DISTILL_ARGS:-} "$@" 2> "$out/$name.log"
}
student student-4x256
student student-2layer --keep-layers 2
# Which 2 of the 4 layers: the bottom ones (the default) against every other one (DistilBERT's choice).
student student-2layer-alternate --keep-layers 2 --keep-which alternate

for kind in int8 bf16; do
  [ -d "$out/student-$kind" ] || "$dqe" export --model "$out/student-4x256" --out "$out/student-$kind" --dtype "$kind"
done
[ -d "$out/student-pruned" ] || "$dqe" export --model "$out/student-4x256" --out "$out/student-pruned" --keep-layers 2
[ -d "$out/student-pruned-alternate" ] || "$dqe" export --model "$out/student-4x256" --out "$out/student-pruned-alternate" \
  --keep-layers 2 --keep-which alternate

arms=(ensemble "${teachers[0]}" student-4x256 student-2layer student-2layer-alternate student-int8 student-bf16
      student-pruned student-pruned-alternate)
: > "$out/measure.tsv"
for arm in "${arms[@]}"; do
  m=$arm; [ -d "$m" ] || m=$out/$arm
  name=$(basename "$arm"); [ "$arm" = "${teachers[0]}" ] && name="one fine-tune ($name)"
  "$dqe" eval --model "$m" --data "$dev" --threads 2 --precision fp32 --metrics-out "$out/m.json" 2>/dev/null
  /usr/bin/time -f "%e %M" -o "$out/t.txt" "$dqe" score --model "$m" --input "$dev" --output /dev/null \
    --threads 2 --precision fp32 2>/dev/null
  # The model's files (an ensemble: its members'; an adapter: its base's too), without training state.
  size=$(/usr/bin/python3 - "$m" <<'PY'
import json, os, sys
def files(d):
    if os.path.exists(f"{d}/ensemble.json"):
        return [f for m in json.load(open(f"{d}/ensemble.json"))["members"] for f in files(m)]
    if os.path.isdir(f"{d}/best"):
        d = f"{d}/best"
    out = [f"{d}/{f}" for f in os.listdir(d) if f not in ("optimizer.pt", "trainer_state.json")]
    c = json.load(open(f"{d}/config.json")).get("dqe", {}).get("adapter")
    return out + (files(c["base_dir"]) if c else [])
print(sum(os.path.getsize(f) for f in set(files(sys.argv[1]))))
PY
)
  printf '%s\t%s\t%s\t%s\n' "$name" "$(cat "$out/m.json" | tr -d '\n')" "$size" "$(cat "$out/t.txt")" >> "$out/measure.tsv"
done

/usr/bin/python3 - "$out" "$dev" <<'PY'
import json, sys
out, dev = sys.argv[1], sys.argv[2]
pairs = sum(1 for l in open(dev) if l.strip())
rows = []
for line in open(f"{out}/measure.tsv"):
    name, metrics, size, timing = line.rstrip("\n").split("\t")
    m = json.loads(metrics)
    wall, rss = timing.split()
    rows.append({"model": name, "rmse": m["rmse"], "spearman": m["spearman"], "bytes": int(size),
                 "pairs_per_s": pairs / float(wall), "peak_rss_mb": int(rss) / 1024})
json.dump(rows, open(f"{out}/deploy.json", "w"), indent=2)
ens = rows[0]
lines = ["| model | dev RMSE | Spearman | size | score pairs/s (2 threads) | peak RSS |", "|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['model']} | {r['rmse']:.4f} ({r['rmse'] / ens['rmse'] - 1:+.2%}) | {r['spearman']:.4f} | "
                 f"{r['bytes'] / 1e6:.2f} MB | {r['pairs_per_s']:.0f} ({r['pairs_per_s'] / ens['pairs_per_s']:.2f}x) | "
                 f"{r['peak_rss_mb']:.0f} MB |")
open(f"{out}/deploy.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
