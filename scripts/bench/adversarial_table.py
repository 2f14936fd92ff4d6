#!/usr/bin/env python3
"""The table of scripts/bench/adversarial.sh from what OUT_DIR holds. Usage: adversarial_table.py OUT_DIR STEPS ARM..."""
import json
import re
import sys
from collections import defaultdict

ATTACKS = ["stuffing", "lookalikes", "invisible", "char_noise", "padding"]


def read(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def attack_stats(lines):
    """Per attack: mean score inflation over the pair's original, and the share flagged."""
    original = {l["pair"]: l["score"] for l in lines if l["attack"] == "none"}
    inflation, flagged = defaultdict(list), defaultdict(list)
    for l in lines:
        inflation[l["attack"]].append(l["score"] - original[l["pair"]])
        flagged[l["attack"]].append(bool(l.get("suspect")))
    mean = lambda v: sum(v) / len(v) if v else float("nan")
    return {a: (mean(inflation[a]), mean(flagged[a])) for a in ["none"] + ATTACKS}


def main():
    out, steps, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = {}
    for arm in arms:
        metrics = json.load(open(f"{out}/{arm}.dev.json"))
        dev = read(f"{out}/{arm}.dev-scored.jsonl")
        cost = ""
        for line in open(f"{out}/{arm}.log", encoding="utf-8"):
            m = re.search(r"a step costs ([0-9.]+)x", line)
            if m:
                cost = m.group(1) + "x"
        rows[arm] = {
            "rmse": metrics["rmse"], "spearman": metrics["spearman"],
            "dev_flagged": sum(bool(l["suspect"]) for l in dev) / len(dev),
            "plain": attack_stats(read(f"{out}/{arm}.attacks.jsonl")),
            "normalized": attack_stats(read(f"{out}/{arm}.attacks-normalized.jsonl")),
            "time": open(f"{out}/{arm}.time").read().split()[-1], "cost": cost or "1x",
        }
    print(f"Reduced run: {steps} optimizer steps per model from the pretrained encoder, seed 42.\n")
    print("| model | dev RMSE | dev Spearman | held-out clean dev flagged | train time (s) | step cost |")
    print("|---|---|---|---|---|---|")
    for arm, r in rows.items():
        print(f"| {arm} | {r['rmse']:.4f} | {r['spearman']:.4f} | {100 * r['dev_flagged']:.2f}% | {r['time']} | {r['cost']} |")
    for mode in ["plain", "normalized"]:
        print(f"\nScore inflation of attacked irrelevant/partly relevant pairs (mean, label units) and share detected"
              f" ({'score --detect' if mode == 'plain' else 'score --detect --normalize'}):\n")
        print("| model | " + " | ".join(ATTACKS) + " |")
        print("|---|" + "---|" * len(ATTACKS))
        for arm, r in rows.items():
            cells = [f"{r[mode][a][0]:+.3f} / {100 * r[mode][a][1]:.1f}%" for a in ATTACKS]
            print(f"| {arm} | " + " | ".join(cells) + " |")
    if "plain" in rows:
        base = rows["plain"]["plain"]["stuffing"][0]
        print(f"\nStuffing inflation, plain model without normalisation: {base:+.3f}.")
        for arm in rows:
            if arm != "plain":
                got = rows[arm]["normalized"]["stuffing"][0]
                print(f"{arm} + normalisation: {got:+.3f} ({100 * got / base:.0f}% of it)." if base else "")
        for arm in rows:
            if arm != "plain":
                d = 100 * (rows[arm]["rmse"] / rows["plain"]["rmse"] - 1)
                print(f"{arm}: dev RMSE {d:+.2f}% against the plain model.")


if __name__ == "__main__":
    main()
