"""Rates read off dqe's own logs, shared by the summaries of scripts/bench/bench.sh and
scripts/gpu/gpu_check.sh (their Python parts import this from scripts/)."""
import json


def train_rate(run_dir, skip=3, batch=32):
    """samples/s and padded tokens/s of a dqe training run between step `skip` and its last step."""
    recs = [json.loads(line) for line in open(f"{run_dir}/train_log.jsonl")]
    a, b = recs[min(skip, len(recs) - 2) - 1], recs[-1]
    dt = b["elapsed_s"] - a["elapsed_s"]
    return (b["step"] - a["step"]) * batch / dt, (b["tokens"] - a["tokens"]) / dt


def score_rate(log_path):
    """pairs/s from the summary line of a `dqe score` log, or None when there is none."""
    for line in open(log_path):
        if "pairs/s" in line:
            return float(line.split("pairs/s")[0].split()[-1])
    return None


def flops_per_token(layers, hidden, inter, seq):
    """Training FLOPs per padded token of a BERT encoder: forward + backward = 3x forward;
    forward = 2 x (weights touched per token) + attention scores."""
    per_layer = 2 * (4 * hidden * hidden + 2 * hidden * inter) + 2 * 2 * seq * hidden
    return 3 * layers * per_layer
