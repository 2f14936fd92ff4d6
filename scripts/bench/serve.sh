#!/usr/bin/env bash
# dqe serve under load (issue 31): one Home Depot pair per request from wrk at 1, 16 and 64
# concurrent connections, against `dqe score`'s batch throughput on the same model, pairs and
# threads; then 100k requests from hey with the server's resident memory sampled every second.
# Throughput is pairs/s; latency p50/p99 from wrk's --latency. Targets (issue 31): at 64 clients
# at least 80% of the batch throughput, p99 under 4x the single-request latency, memory flat.
#
# MODEL=DIR: the model to serve (default: a 4x256 encoder, the quality recipe's shape, trained
#   from scratch for a few steps here: speed does not depend on what it learned).
# THREADS (default 1): compute threads of both score and serve. The load generator runs on the
#   same machine and takes CPU too: on 2 cores, THREADS=1 leaves it one.
# DURATION (default 20): seconds of each wrk run. REQUESTS (default 100000): hey's run.
# Leaves OUT_DIR/serve.md and OUT_DIR/serve.json. Usage: scripts/bench/serve.sh OUT_DIR
set -euo pipefail
trap 'echo "serve.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
out=${1:?usage: scripts/bench/serve.sh OUT_DIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
shared=${DQE_SHARED:-$here/../shared}
train=$shared/data/homedepot/train.jsonl
dev=$shared/data/homedepot/dev.jsonl
for f in "$train" "$dev"; do [ -r "$f" ] || { echo "serve.sh: $f: not found" >&2; exit 1; }; done
bash "$here/scripts/setup/setup.sh" wrk hey >/dev/null
source "$here/scripts/bench/dqe_binary.sh"
mkdir -p "$out"
out=$(cd "$out" && pwd)
threads=${THREADS:-1}
duration=${DURATION:-20}
requests=${REQUESTS:-100000}

model=${MODEL:-}
if [ -z "$model" ]; then
  model=$out/model
  [ -f "$model/best/config.json" ] || "$dqe" train --train "$train" --dev "$dev" --out "$model" --layers 4 \
    --hidden 256 --heads 4 --intermediate 1024 --max-len 64 --batch-size 32 --max-steps 20 --eval-every 0 \
    --precision fp32 2> "$out/train.log"
fi

# The batch peer: score's own pairs/s on 4,000 dev pairs (its summary line; loading excluded).
head -n 4000 "$dev" > "$out/pairs.jsonl"
"$dqe" score --model "$model" --input "$out/pairs.jsonl" --output "$out/scored.jsonl" --threads "$threads" \
  --precision fp32 2> "$out/score.log"
batch=$(grep -o '[0-9.]* pairs/s' "$out/score.log" | tail -1 | cut -d' ' -f1)

rm -f "$out/port"
"$dqe" serve --model "$model" --port 0 --port-file "$out/port" --threads "$threads" --precision fp32 \
  --max-batch 64 --max-delay-ms 2 --connections 96 2> "$out/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$out/port" ] && break; sleep 0.1; done
port=$(cat "$out/port")
url=http://127.0.0.1:$port/v1/score

# wrk: each request one pair, cycling through the pairs.
cat > "$out/post.lua" <<EOF
local lines = {}
for line in io.lines("$out/pairs.jsonl") do lines[#lines + 1] = line .. "\n" end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
request = function()
  i = i % #lines + 1
  return wrk.format(nil, nil, nil, lines[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
EOF
wrk -t1 -c4 -d3s -s "$out/post.lua" "$url" > /dev/null  # warm-up
# The batch-size histogram's sum and count, for the mean batch of each run.
batches() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^dqe_batch_size_sum/ {s=$2} /^dqe_batch_size_count/ {c=$2} END {print s, c}'; }
results=()
for c in 1 16 64; do
  t=$(( c < 2 ? 1 : 2 ))
  read -r s0 c0 < <(batches)
  wrk -t"$t" -c"$c" -d"${duration}s" --timeout 10s -s "$out/post.lua" "$url" > "$out/wrk-$c.txt"
  read -r s1 c1 < <(batches)
  read -r _ n errors micros p50 p99 < <(grep '^RESULT' "$out/wrk-$c.txt")
  mean=$(python3 -c "print(($s1 - $s0) / max(1, $c1 - $c0))")
  results+=("$c $n $errors $micros $p50 $p99 $mean")
done

# Memory over REQUESTS requests: VmRSS every second.
head -n 1 "$out/pairs.jsonl" > "$out/one.jsonl"
: > "$out/rss.txt"
( while kill -0 $server 2>/dev/null; do grep VmRSS /proc/$server/status | awk '{print $2}' >> "$out/rss.txt"; sleep 1; done ) &
sampler=$!
hey -n "$requests" -c 16 -m POST -T application/x-ndjson -D "$out/one.jsonl" "$url" > "$out/hey.txt"
kill $sampler 2>/dev/null || true
kill -TERM $server
wait $server || true
trap - EXIT

python3 - "$out" "$batch" "$threads" "$requests" "${results[@]}" <<'EOF'
import json, sys
out, batch, threads, requests = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = []
for r in sys.argv[5:]:
    c, n, errors, micros, p50, p99, mean = r.split()
    rows.append({"clients": int(c), "requests": int(n), "errors": int(errors), "mean_batch": float(mean),
                 "pairs_per_s": int(n) / (int(micros) / 1e6), "p50_ms": float(p50) / 1e3, "p99_ms": float(p99) / 1e3})
rss = [int(x) for x in open(f"{out}/rss.txt").read().split()]
hey = open(f"{out}/hey.txt").read()
single = rows[0]["p50_ms"]
at64 = rows[-1]
res = {"threads": threads, "batch_pairs_per_s": batch, "runs": rows,
       "ratio_64_to_batch": at64["pairs_per_s"] / batch, "p99_64_over_single_p50": at64["p99_ms"] / single,
       "rss_kb": {"first": rss[0] if rss else None, "after_10s": rss[min(10, len(rss) - 1)] if rss else None,
                  "max": max(rss) if rss else None, "last": rss[-1] if rss else None, "samples": len(rss)},
       "hey_requests": requests, "hey_status": [l.strip() for l in hey.splitlines() if "responses" in l]}
json.dump(res, open(f"{out}/serve.json", "w"), indent=2)
md = [f"# dqe serve under load ({threads} compute thread(s), fp32, one pair a request)", "",
      f"Batch peer: `dqe score` {batch:.0f} pairs/s on the same pairs and threads.", "",
      "| clients | pairs/s | vs batch | p50 ms | p99 ms | mean batch | errors |", "|---|---|---|---|---|---|---|"]
for r in rows:
    md.append(f"| {r['clients']} | {r['pairs_per_s']:.0f} | {r['pairs_per_s'] / batch:.2f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['mean_batch']:.1f} | {r['errors']} |")
md += ["", f"Targets: 64 clients at >= 0.80 of batch: {res['ratio_64_to_batch']:.2f}; p99 at 64 clients under 4x the "
       f"single-request latency (p50 at 1 client): {res['p99_64_over_single_p50']:.1f}x.",
       f"Resident memory over {requests} requests (hey, 16 clients): first {res['rss_kb']['first']} kB, after 10 s "
       f"{res['rss_kb']['after_10s']} kB, max {res['rss_kb']['max']} kB, last {res['rss_kb']['last']} kB.",
       "Statuses: " + "; ".join(res["hey_status"])]
open(f"{out}/serve.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOF
