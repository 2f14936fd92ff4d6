#!/usr/bin/python3
"""Classic relevance baselines for the quality benchmark (scripts/bench/quality.sh).

  constant   the mean training label
  lexical    33 lexical match features (FEATURE_NAMES) + gradient boosting (scikit-learn): a
             grid of 8 settings on dev, and the number of trees (up to 400 or 800) chosen on dev
  fasttext   fastText over query, title and match tokens, tuned on dev

Everything is selected on dev only. Writes one JSON object per baseline with dev RMSE,
MAE, Spearman and nDCG@10 (gain = label - 1) and its gain over a random ranking, and
optionally the dev predictions of the best lexical model (--predictions-out).

Usage: baselines.py --train train.jsonl --dev dev.jsonl --out baselines.json [--threads 2]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{n}: invalid JSON ({e})")
    return rows


TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
UNITS = {"in", "ft", "gal", "lb", "oz", "qt", "watt", "w", "v", "volt", "amp", "mm", "cm", "sq", "cu", "btu", "pack",
         "pk", "piece", "gauge", "ga", "inch", "foot", "feet", "x"}


def tokens(text):
    return TOKEN.findall(text.lower())


def stem(w):
    for suffix in ("ing", "ers", "er", "es", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def char_grams(text, n=3):
    t = " " + " ".join(tokens(text)) + " "
    return {t[i:i + n] for i in range(max(0, len(t) - n + 1))}


class Idf:
    def __init__(self, docs):
        df = Counter()
        for d in docs:
            df.update(set(d))
        self.n = len(docs)
        self.df = df
        self.avg_len = sum(len(d) for d in docs) / max(1, len(docs))

    def __call__(self, w):
        return math.log(1 + (self.n - self.df.get(w, 0) + 0.5) / (self.df.get(w, 0) + 0.5))


def features(q, t, idf):
    """The lexical features of one pair: 33 numbers (FEATURE_NAMES names them)."""
    qt, tt = tokens(q), tokens(t)
    qs, ts = set(qt), set(tt)
    qst, tst = {stem(w) for w in qt}, {stem(w) for w in tt}
    exact = [w for w in qt if w in ts]
    stemmed = [w for w in qt if stem(w) in tst]
    partial = [w for w in qt if len(w) >= 4 and any(x.startswith(w[:4]) for x in tt)]
    title_text = " ".join(tt)
    substring = [w for w in qt if w not in ts and len(w) >= 3 and w in title_text]  # "deck" in "deckover"
    nums_q = [w for w in qt if NUMBER.match(w)]
    nums_t = {w for w in tt if NUMBER.match(w)}
    units_q = [w for w in qt if w in UNITS]
    k1, b = 1.2, 0.75
    tf = Counter(tt)
    bm25 = sum(idf(w) * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(tt) / idf.avg_len)) for w in qs if w in tf)
    idf_q = [idf(w) for w in qt] or [0.0]
    idf_hit = [idf(w) for w in qt if w in ts] or [0.0]
    idf_miss = [idf(w) for w in qt if w not in ts] or [0.0]
    qg, tg = char_grams(q), char_grams(t)
    bigrams_q = set(zip(qt, qt[1:]))
    bigrams_t = set(zip(tt, tt[1:]))
    nq = max(1, len(qt))
    # Where the first query word found in the title sits (0 = first title word; 1 = none found).
    positions = [i for i, w in enumerate(tt) if w in qs]
    first_match = positions[0] / max(1, len(tt)) if positions else 1.0
    # Unmatched query words: how close the title comes to them in character 3-grams (typos,
    # compounds), and how many of them the catalogue never uses at all (misspellings).
    unmatched = [w for w in qt if w not in ts]
    ug = set().union(*(char_grams(w) for w in unmatched)) if unmatched else set()
    unseen = sum(idf.df.get(w, 0) == 0 for w in qt)
    return [
        len(qt), len(tt), len(q), len(t),
        len(exact), len(exact) / nq, len(stemmed) / nq, len(partial) / nq, len(substring) / nq,
        float(" ".join(qt) in title_text),  # phrase
        float(bool(qt) and qt[0] in ts), float(bool(qt) and qt[-1] in ts), float(bool(qt) and stem(qt[-1]) in tst),
        len(nums_q), sum(w in nums_t for w in nums_q), float(bool(nums_q) and all(w in nums_t for w in nums_q)),
        len(units_q), sum(w in ts for w in units_q),
        bm25, sum(idf_hit), sum(idf_hit) / max(1e-9, sum(idf_q)), max(idf_miss), float(np.mean(idf_q)), max(idf_q),
        len(qg & tg) / max(1, len(qg | tg)), len(qg & tg) / max(1, len(qg)),
        len(bigrams_q & bigrams_t) / max(1, len(bigrams_q)),
        float(bool(tt) and tt[0] in qs),  # brand-like first title word in the query
        len(qst & tst) / max(1, len(qst | tst)),
        first_match, unseen, len(ug & tg) / max(1, len(ug)), len(unmatched),
    ]


FEATURE_NAMES = [
    "query words", "title words", "query chars", "title chars",
    "exact matches", "exact match fraction", "stemmed match fraction", "prefix (4 chars) match fraction",
    "substring match fraction", "phrase match",
    "first query word matched", "last query word matched", "last query word matched (stemmed)",
    "query numbers", "query numbers matched", "all query numbers matched",
    "query units", "query units matched",
    "BM25", "IDF of matched words", "IDF-weighted match fraction", "largest IDF unmatched", "mean query IDF",
    "max query IDF",
    "char 3-gram Jaccard", "char 3-gram containment", "word bigram containment",
    "first title word in query", "stemmed Jaccard",
    "position of first match", "query words unseen in the catalogue", "char 3-gram containment of unmatched words",
    "unmatched query words",
]


def metrics(y, p, qids):
    y, p = np.asarray(y, float), np.asarray(p, float)
    rmse = float(np.sqrt(np.mean((y - p) ** 2)))
    mae = float(np.mean(np.abs(y - p)))

    def ranks(a):
        order = np.argsort(a, kind="mergesort")
        r = np.empty(len(a))
        sa = a[order]
        i = 0
        while i < len(a):
            j = i
            while j + 1 < len(a) and sa[j + 1] == sa[i]:
                j += 1
            r[order[i:j + 1]] = (i + j) / 2.0
            i = j + 1
        return r

    ry, rp = ranks(y), ranks(p)
    spearman = float(np.corrcoef(ry, rp)[0, 1]) if np.std(rp) > 0 else 0.0
    groups = defaultdict(list)
    for i, q in enumerate(qids):
        groups[q].append(i)

    def ndcg(order_scores, gains, k=10):
        idx = np.argsort(-order_scores, kind="mergesort")[:k]
        dcg = sum(gains[i] / math.log2(r + 2) for r, i in enumerate(idx))
        ideal = sorted(gains, reverse=True)[:k]
        idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
        return dcg / idcg if idcg > 0 else None

    model, rand = [], []
    for ix in groups.values():
        if len(ix) < 2:
            continue
        gains = y[ix] - 1.0
        v = ndcg(p[ix], gains)
        if v is None:
            continue
        model.append(v)
        # Expected nDCG of a random order: the mean over position-averaged gains.
        n = len(ix)
        k = min(10, n)
        idcg = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(gains, reverse=True)[:k]))
        rand.append(sum(np.mean(gains) / math.log2(r + 2) for r in range(k)) / idcg)
    nd, nr = float(np.mean(model)), float(np.mean(rand))
    return {"rmse": rmse, "mae": mae, "spearman": spearman, "ndcg@10": nd, "ndcg@10_random": nr,
            "ndcg@10_gain": nd - nr}


def text_of(r):
    return " ".join(str(r.get(k, "")) for k in ("title", "description") if r.get(k))


def lexical(train, dev, threads, log):
    from sklearn.ensemble import HistGradientBoostingRegressor
    docs = [tokens(text_of(r)) for r in train + dev]
    idf = Idf(docs)
    xtr = np.array([features(r["query"], text_of(r), idf) for r in train])
    xdv = np.array([features(r["query"], text_of(r), idf) for r in dev])
    ytr = np.array([float(r["label"]) for r in train])
    ydv = np.array([float(r["label"]) for r in dev])
    assert xtr.shape[1] == len(FEATURE_NAMES)
    # A small grid on dev; within each fit, the number of trees is chosen on dev as well,
    # every 10 trees up to the fit's budget (the same selection dqe's checkpoints get).
    best, grid = None, []
    for lr, budget in ((0.1, 400), (0.03, 800)):
        for leaves in (15, 31):
            for min_leaf in (20, 100):
                m = HistGradientBoostingRegressor(learning_rate=lr, max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
                                                  l2_regularization=1.0, max_iter=budget, early_stopping=False,
                                                  random_state=0)
                m.fit(xtr, ytr)
                point = None
                for it, p in enumerate(m.staged_predict(xdv), 1):
                    if it % 10:
                        continue
                    rmse = float(np.sqrt(np.mean((ydv - p) ** 2)))
                    if point is None or rmse < point[0]:
                        point = (rmse, dict(learning_rate=lr, max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
                                            l2_regularization=1.0, max_iter=it), p)
                grid.append(dict(point[1], dev_rmse=round(point[0], 4)))
                log(f"lexical: {point[1]} dev RMSE {point[0]:.4f}")
                if best is None or point[0] < best[0]:
                    best = point
    log(f"lexical: best dev RMSE {best[0]:.4f} with {best[1]} ({xtr.shape[1]} features)")
    return best[2], dict(best[1], grid=grid, features=FEATURE_NAMES)


def fasttext_baseline(train, dev, threads, log, workdir):
    """fastText classifies the rounded label; the prediction is the expected label."""
    exe = "/usr/bin/fasttext"
    if not os.path.exists(exe):
        log("fasttext: not installed; skipped")
        return None, None

    def line(r):
        qt, tt = tokens(r["query"]), tokens(text_of(r))
        ts = set(tt)
        match = ["m_" + w for w in qt if w in ts] + ["u_" + w for w in qt if w not in ts]
        return " ".join(["q_" + w for w in qt] + tt + match)

    classes = ["1", "2", "3"]
    tr_path = os.path.join(workdir, "ft_train.txt")
    with open(tr_path, "w") as f:
        for r in train:
            f.write(f"__label__{int(round(float(r['label'])))} {line(r)}\n")
    dv_path = os.path.join(workdir, "ft_dev.txt")
    with open(dv_path, "w") as f:
        for r in dev:
            f.write(line(r) + "\n")
    ydv = np.array([float(r["label"]) for r in dev])
    best = None
    for epoch in (5, 15):
        for lr in (0.1,):
            for ngrams in (1, 2):
                model = os.path.join(workdir, "ft")
                subprocess.run([exe, "supervised", "-input", tr_path, "-output", model, "-epoch", str(epoch), "-lr",
                                str(lr), "-wordNgrams", str(ngrams), "-dim", "50", "-thread", str(threads), "-seed", "1",
                                "-verbose", "0"], check=True)
                out = subprocess.run([exe, "predict-prob", model + ".bin", dv_path, "3"], check=True,
                                     capture_output=True, text=True).stdout.splitlines()
                p = []
                for o in out:
                    parts = o.split()
                    probs = {parts[i].replace("__label__", ""): float(parts[i + 1]) for i in range(0, len(parts), 2)}
                    p.append(sum(float(c) * probs.get(c, 0.0) for c in classes) / max(1e-9, sum(probs.values())))
                p = np.array(p)
                rmse = float(np.sqrt(np.mean((ydv - p) ** 2)))
                if best is None or rmse < best[0]:
                    best = (rmse, dict(epoch=epoch, lr=lr, wordNgrams=ngrams), p)
    log(f"fasttext: best dev RMSE {best[0]:.4f} with {best[1]}")
    return best[2], best[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--predictions-out", help="dev predictions of the lexical model, one per line")
    a = ap.parse_args()
    log = lambda m: print(f"[baselines] {m}", file=sys.stderr, flush=True)
    train, dev = read_jsonl(a.train), read_jsonl(a.dev)
    ydv = [float(r["label"]) for r in dev]
    qids = [r.get("query_id", r["query"]) for r in dev]
    results = {}
    t0 = time.time()
    mean = float(np.mean([float(r["label"]) for r in train]))
    results["constant (train mean)"] = dict(metrics(ydv, [mean] * len(dev), qids), cpu_s=0.0)
    results["constant (train mean)"]["spearman"] = None
    t = time.process_time()
    p, params = lexical(train, dev, a.threads, log)
    results["lexical features + gradient boosting"] = dict(metrics(ydv, p, qids), params=params,
                                                           cpu_s=time.process_time() - t)
    if a.predictions_out:
        np.savetxt(a.predictions_out, p, fmt="%.6f")
    with tempfile.TemporaryDirectory() as work:
        t = time.time()
        p, params = fasttext_baseline(train, dev, a.threads, log, work)
        if p is not None:
            results["fastText (query, title, match tokens)"] = dict(metrics(ydv, p, qids), params=params,
                                                                    wall_s=time.time() - t)
    with open(a.out + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(a.out + ".tmp", a.out)
    log(f"done in {time.time() - t0:.0f}s: {a.out}")


if __name__ == "__main__":
    main()
