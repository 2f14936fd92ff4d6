#!/usr/bin/env python3
"""Controlled data for side-input fusion: the label depends on the text, on a behaviour
signal, and on agreement between the query and an image vector, so that each input has a
known share of what can be learned.

    make_fusion_data.py OUT_DIR [--train N] [--dev N] [--seed S]

Each line: query "<colour> <kind>", title "<brand> <kind'> <word>" (no colour: only the
image shows it), features {ctr, reviews, price}, attributes {brand}, image_embedding (8
floats: the product colour's fixed vector plus noise). Hidden variables: t (the title's kind
is the query's), a (the product's colour is the query's), z (quality, shown only through ctr =
0.03 exp(z); reviews and price are noise). label = 1 + t + 0.7 a + 0.5 clip(z, -2, 2) + N(0, 0.1).
A text-only model can learn t only (RMSE about 0.6 at best); with all inputs about 0.1.
Writes train.jsonl, dev.jsonl and, for scoring without each input, dev_no_features.jsonl,
dev_no_image.jsonl, dev_no_attributes.jsonl and dev_text_only.jsonl.
"""
import argparse
import json
import math
import os
import random

KINDS = ["drill", "rug", "lamp", "chair", "table", "hose", "saw", "fan"]
COLOURS = ["red", "blue", "green", "black", "white", "grey", "brown", "yellow"]
BRANDS = ["acme", "zeta", "bolt", "nova", "orbit", "pine"]
WORDS = ["classic", "modern", "pro", "compact", "deluxe", "basic"]
IMAGE_DIM = 8


def colour_vectors(rng):
    out = {}
    for c in COLOURS:
        v = [rng.gauss(0, 1) for _ in range(IMAGE_DIM)]
        n = math.sqrt(sum(x * x for x in v))
        out[c] = [x / n for x in v]
    return out


def make_line(rng, vectors, i):
    colour, kind = rng.choice(COLOURS), rng.choice(KINDS)
    t = rng.random() < 0.5
    a = rng.random() < 0.5
    title_kind = kind if t else rng.choice([k for k in KINDS if k != kind])
    product_colour = colour if a else rng.choice([c for c in COLOURS if c != colour])
    z = rng.gauss(0, 1)
    brand = rng.choice(BRANDS)
    label = 1 + (1.0 if t else 0) + (0.7 if a else 0) + 0.5 * max(-2.0, min(2.0, z)) + rng.gauss(0, 0.1)
    image = [round(x + rng.gauss(0, 0.3), 4) for x in vectors[product_colour]]
    return {
        "id": f"r{i}",
        "query_id": f"q{i // 4}",
        "query": f"{colour} {kind}",
        "title": f"{brand} {title_kind} {rng.choice(WORDS)}",
        "label": round(label, 4),
        "features": {
            "ctr": round(0.03 * math.exp(z), 6),
            "reviews": int(math.exp(rng.gauss(3, 1))),
            "price": round(math.exp(rng.gauss(4, 0.5)), 2),
        },
        "attributes": {"brand": brand},
        "image_embedding": image,
    }


def write(path, lines):
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--dev", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    vectors = colour_vectors(random.Random(12345))  # fixed across seeds: one "image encoder"
    os.makedirs(args.out, exist_ok=True)
    train = [make_line(rng, vectors, i) for i in range(args.train)]
    dev = [make_line(rng, vectors, args.train + i) for i in range(args.dev)]
    write(os.path.join(args.out, "train.jsonl"), train)
    write(os.path.join(args.out, "dev.jsonl"), dev)
    for name, drop in [("no_features", ["features"]), ("no_image", ["image_embedding"]),
                       ("no_attributes", ["attributes"]),
                       ("text_only", ["features", "image_embedding", "attributes"])]:
        write(os.path.join(args.out, f"dev_{name}.jsonl"),
              [{k: v for k, v in line.items() if k not in drop} for line in dev])


if __name__ == "__main__":
    main()
