#!/usr/bin/env python3
"""Attacked copies of query-result pairs, for the adversarial benchmark (scripts/bench/adversarial.sh).

Takes the irrelevant and partly relevant pairs of a JSONL file (label <= --max-label) and writes,
for each, the original ("attack": "none") and one copy per attack, each line with "pair" (its
pair's index) and "attack":
  stuffing     the query's words appended three times each (keyword stuffing)
  lookalikes   the query's words appended once with look-alike letters of other scripts swapped in
               (Cyrillic/Greek "a", "e", "o", ...), and some of the title's letters swapped too
  invisible    the query's words appended with zero-width spaces inside them, and zero-width
               characters or soft hyphens inside some title words
  char_noise   typos: in a third of the title's words a letter deleted, doubled or swapped
  padding      twelve of the most frequent query words of the file appended (title padding)
Seeded: the same --seed and input give the same output. Usage:
  make_attacks.py --input dev.jsonl --output attacks.jsonl [--pairs 600] [--seed 7] [--max-label 2.0]
"""
import argparse
import collections
import json
import random
import re

LOOKALIKES = {
    "a": "\u0430", "c": "\u0441", "e": "\u0435", "i": "\u0456", "j": "\u0458", "o": "\u043e", "p": "\u0440",
    "s": "\u0455", "x": "\u0445", "y": "\u0443", "A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415",
    "H": "\u041d", "K": "\u041a", "M": "\u041c", "O": "\u041e", "P": "\u0420", "T": "\u0422", "X": "\u0425",
    "v": "\u03bd", "n": "\u0578",
}
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff"]


def words(text):
    return re.findall(r"[A-Za-z0-9]+", text)


def swap_lookalikes(word, rng, share):
    out = []
    for ch in word:
        out.append(LOOKALIKES[ch] if ch in LOOKALIKES and rng.random() < share else ch)
    if out == list(word):  # at least one swap where possible
        for i, ch in enumerate(word):
            if ch in LOOKALIKES:
                out[i] = LOOKALIKES[ch]
                break
    return "".join(out)


def hide(word, rng):
    if len(word) < 2:
        return word + rng.choice(INVISIBLE)
    i = rng.randrange(1, len(word))
    return word[:i] + rng.choice(INVISIBLE) + word[i:]


def typo(word, rng):
    if len(word) < 3:
        return word
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def attack(name, query, title, rng, popular):
    q = words(query)
    if name == "stuffing":
        return title + " " + " ".join(w for w in q for _ in range(3))
    if name == "lookalikes":
        body = " ".join(swap_lookalikes(w, rng, 0.3) if rng.random() < 0.3 else w for w in title.split(" "))
        return body + " " + " ".join(swap_lookalikes(w, rng, 0.5) for w in q)
    if name == "invisible":
        body = " ".join(hide(w, rng) if rng.random() < 0.3 else w for w in title.split(" "))
        return body + " " + " ".join(hide(w, rng) for w in q)
    if name == "char_noise":
        return " ".join(typo(w, rng) if rng.random() < 1 / 3 else w for w in title.split(" "))
    if name == "padding":
        return title + " " + " ".join(rng.sample(popular, min(12, len(popular))))
    raise ValueError(name)


ATTACKS = ["stuffing", "lookalikes", "invisible", "char_noise", "padding"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--pairs", type=int, default=600, help="pairs attacked (a seeded sample)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-label", type=float, default=2.0, help="pairs with label <= this are attacked")
    ap.add_argument("--query-field", default="query")
    ap.add_argument("--text-field", default="title")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    records = [json.loads(line) for line in open(a.input, encoding="utf-8") if line.strip()]
    counts = collections.Counter(w.lower() for r in records for w in words(r[a.query_field]) if len(w) > 2)
    popular = [w for w, _ in counts.most_common(60)]
    pool = [r for r in records if float(r["label"]) <= a.max_label]
    rng.shuffle(pool)
    pool = pool[: a.pairs]
    with open(a.output, "w", encoding="utf-8") as out:
        for i, r in enumerate(pool):
            base = {a.query_field: r[a.query_field], "label": r["label"], "pair": i}
            out.write(json.dumps({**base, a.text_field: r[a.text_field], "attack": "none"}, ensure_ascii=False) + "\n")
            for name in ATTACKS:
                text = attack(name, r[a.query_field], r[a.text_field], rng, popular)
                out.write(json.dumps({**base, a.text_field: text, "attack": name}, ensure_ascii=False) + "\n")
    print(f"make_attacks: {len(pool)} pairs x {len(ATTACKS)} attacks (+ originals) -> {a.output}")


if __name__ == "__main__":
    main()
