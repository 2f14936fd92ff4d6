#!/usr/bin/env python3
"""Engine-side signals for Home Depot JSONL, as a search log carries them, computed without
labels: adds to every line a "features" object with

  bm25              BM25 (k1 1.2, b 0.75) of the title for the query, over the catalogue of
                    distinct products (titles by product_id) of all the files given
  queries_per_product  distinct queries that returned the product, in all the files
  results_per_query    results (lines) of the query, in all the files
  title_len         words in the title

    homedepot_signals.py OUT_DIR IN.jsonl [IN.jsonl ...]

writes OUT_DIR/<name of each IN>. The statistics are those of every file together: what the
engine saw, not what the labels say (no label is read).
"""
import collections
import json
import math
import os
import re
import sys

WORD = re.compile(r"[a-z0-9]+")


def words(text):
    return WORD.findall(text.lower())


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir, paths = sys.argv[1], sys.argv[2:]
    files = []
    for p in paths:
        with open(p) as f:
            files.append([json.loads(line) for line in f if line.strip()])
    titles = {}  # product -> title
    queries_of = collections.defaultdict(set)
    results_of = collections.Counter()
    for lines in files:
        for r in lines:
            product = r.get("product_id", r["title"])
            titles[product] = r["title"]
            queries_of[product].add(r["query"])
            results_of[r.get("query_id", r["query"])] += 1
    df = collections.Counter()
    total_len = 0
    for t in titles.values():
        w = words(t)
        total_len += len(w)
        df.update(set(w))
    n = len(titles)
    avg_len = total_len / max(n, 1)

    def bm25(query, title):
        tw = words(title)
        tf = collections.Counter(tw)
        score = 0.0
        for q in set(words(query)):
            if q not in tf:
                continue
            idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
            f = tf[q]
            score += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len(tw) / avg_len))
        return round(score, 4)

    os.makedirs(out_dir, exist_ok=True)
    for p, lines in zip(paths, files):
        with open(os.path.join(out_dir, os.path.basename(p)), "w") as f:
            for r in lines:
                product = r.get("product_id", r["title"])
                r["features"] = {
                    "bm25": bm25(r["query"], r["title"]),
                    "queries_per_product": len(queries_of[product]),
                    "results_per_query": results_of[r.get("query_id", r["query"])],
                    "title_len": len(words(r["title"])),
                }
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
