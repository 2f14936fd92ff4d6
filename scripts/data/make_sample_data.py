#!/usr/bin/env python3
"""Writes dqe's own sample data into data/: synthetic e-commerce query-result pairs with
graded relevance, learnable from the text alone.

  label 3.0: the product is the queried type and has every queried attribute
  label 2.x: the right type, but some queried attribute (colour, material, brand) differs
  label 1.x: another product type
plus a little label noise, as human judgements have. "grade" holds the same judgement as
a class name (exact / partial / irrelevant) for classification. Deterministic (seeded).

  /usr/bin/python3 scripts/data/make_sample_data.py [OUT_DIR]
"""
import json
import random
import sys

TYPES = {
    "chair": ["Dining Chair", "Accent Chair", "Office Chair"],
    "table": ["Coffee Table", "Dining Table", "Side Table"],
    "lamp": ["Table Lamp", "Floor Lamp", "Desk Lamp"],
    "drill": ["Cordless Drill", "Hammer Drill", "Drill Driver Kit"],
    "faucet": ["Kitchen Faucet", "Bathroom Faucet", "Pull-Down Faucet"],
    "rug": ["Area Rug", "Runner Rug", "Outdoor Rug"],
    "shelf": ["Wall Shelf", "Floating Shelf", "Bookshelf"],
    "towel": ["Bath Towel", "Hand Towel", "Beach Towel"],
    "hose": ["Garden Hose", "Expandable Hose", "Soaker Hose"],
    "bulb": ["LED Light Bulb", "Smart Bulb", "Flood Light Bulb"],
    "mirror": ["Wall Mirror", "Vanity Mirror", "Floor Mirror"],
    "saw": ["Circular Saw", "Miter Saw", "Jig Saw"],
}
COLORS = ["black", "white", "grey", "red", "blue", "green", "brown", "silver", "gold", "beige"]
MATERIALS = ["wood", "metal", "steel", "plastic", "glass", "cotton", "bamboo", "brass"]
BRANDS = ["Acme", "Homelux", "Toolpro", "Verdant", "Northwood", "Brightline", "Ironclad", "Casa"]
EXTRAS = ["set of 2", "2-pack", "heavy duty", "with storage", "easy assembly", "modern", "classic",
          "20V", "outdoor", "indoor", "adjustable", "energy saving", "premium"]


def product(rng, kind, color=None, material=None, brand=None):
    return {
        "kind": kind,
        "name": rng.choice(TYPES[kind]),
        "color": color or rng.choice(COLORS),
        "material": material or rng.choice(MATERIALS),
        "brand": brand or rng.choice(BRANDS),
        "extra": rng.sample(EXTRAS, 2),
    }


def title(p, rng):
    parts = [p["brand"], p["color"].title(), p["material"].title(), p["name"]]
    if rng.random() < 0.5:
        parts.append("- " + p["extra"][0])
    return " ".join(parts)


def description(p):
    return f"{p['name']} in {p['color']} {p['material']} by {p['brand']}, {p['extra'][0]}, {p['extra'][1]}."


def judge(query, p, rng):
    if p["kind"] != query["kind"]:
        label = 1.0 + (0.33 if rng.random() < 0.15 else 0.0)
    else:
        misses = sum(query[a] is not None and query[a] != p[a] for a in ("color", "material", "brand"))
        label = 3.0 if misses == 0 else (2.33 if misses == 1 else 2.0)
        if rng.random() < 0.1:
            label = round(max(1.0, min(3.0, label + rng.choice([-0.33, 0.33]))), 2)
    grade = "exact" if label >= 2.67 else ("partial" if label >= 1.67 else "irrelevant")
    return label, grade


def make(rng, n_queries, first_id, with_labels=True):
    rows = []
    for q in range(n_queries):
        kind = rng.choice(list(TYPES))
        query = {"kind": kind, "color": None, "material": None, "brand": None}
        for attr, values in (("color", COLORS), ("material", MATERIALS), ("brand", BRANDS)):
            if rng.random() < 0.5:
                query[attr] = rng.choice(values)
        words = [query["brand"], query["color"], query["material"], kind]
        text = " ".join(w.lower() for w in words if w)
        qid = f"q{first_id + q}"
        for r in range(rng.randint(4, 8)):
            roll = rng.random()
            if roll < 0.35:
                p = product(rng, kind, query["color"], query["material"], query["brand"])
            elif roll < 0.7:
                p = product(rng, kind)
            else:
                p = product(rng, rng.choice([k for k in TYPES if k != kind]))
            row = {"id": f"{qid}-{r}", "query_id": qid, "query": text, "title": title(p, rng)}
            if rng.random() < 0.6:
                row["description"] = description(p)
            if with_labels:
                row["label"], row["grade"] = judge(query, p, rng)
            rows.append(row)
    return rows


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "data"
    rng = random.Random(7)
    write(f"{out}/train.jsonl", make(rng, 420, 0))
    write(f"{out}/dev.jsonl", make(rng, 100, 1000))
    write(f"{out}/score.jsonl", make(rng, 40, 2000, with_labels=False))


if __name__ == "__main__":
    main()
