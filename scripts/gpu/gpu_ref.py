"""The reference loop of ../shared/reference/bert_ref.py on a GPU, for scripts/gpu/gpu_check.sh.

bert_ref.py's own `train` and `score` run on the CPU only. This imports its model, tokenizer,
initialisation and batch encoding unchanged and runs the same loops on CUDA: `train` is its
fine-tuning loop (AdamW, MSE on one label), `score` its eval-mode forward pass. Both tokenize
inside the loop as bert_ref.py does; --pretokenized encodes every batch before the clock
starts, the ceiling of an eager PyTorch loop. --bf16 wraps the forward pass in bf16 autocast,
as dqe's default precision on a GPU does. `matmul` measures the GPU's matrix-product rate.
Each prints one JSON line.
"""
import argparse
import importlib.util
import json
import time

import torch


def load_reference(path):
    spec = importlib.util.spec_from_file_location("bert_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def word_tokenizer(ref, rows, vocab_size):
    """bert_ref.py's vocabulary of whole words from the data, most frequent first."""
    words = {}
    basic = ref.WordPiece({}, True)
    for r in rows:
        for w in basic.basic(r["query"] + " " + r.get("title", "")):
            words[w] = words.get(w, 0) + 1
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [w for w, _ in sorted(words.items(), key=lambda x: -x[1])][: vocab_size - 5]
    return ref.WordPiece({w: i for i, w in enumerate(vocab)})


def build_model(ref, a, vocab, num_labels, device):
    cfg = {"vocab_size": vocab, "hidden_size": a.hidden, "num_hidden_layers": a.layers,
           "num_attention_heads": a.heads, "intermediate_size": a.hidden * 4, "hidden_dropout_prob": 0.1,
           "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
           "layer_norm_eps": 1e-12, "num_labels": num_labels}
    model = ref.BertForSequenceClassification(cfg)
    ref.init_weights(model)
    return model.to(device)


def to_device(tensors, device):
    return [t.to(device, non_blocking=True) for t in tensors]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def cmd_train(a, ref):
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    rows = [json.loads(line) for line in open(a.data, encoding="utf-8") if line.strip()]
    tok = word_tokenizer(ref, rows, a.vocab_size)
    model = build_model(ref, a, len(tok.vocab), 1, device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    model.train()
    n = len(rows)

    def batch(step):
        chunk = [rows[(step * a.batch + i) % n] for i in range(a.batch)]
        enc = ref.batch_encode(tok, [(r["query"], r.get("title", "")) for r in chunk], a.max_len)
        return list(enc) + [torch.tensor([r["label"] for r in chunk])]

    ready = [batch(s) for s in range(a.steps + 1)] if a.pretokenized else None
    seen, t0 = 0, None
    for step in range(a.steps + 1):
        if step == 1:
            sync(device)
            t0, seen = time.perf_counter(), 0
        ids, types, mask, labels = to_device(ready[step] if ready else batch(step), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(ids, types, mask)[0]
        loss = model.loss(logits.float(), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += a.batch
    sync(device)
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "bert_ref.py loop on " + a.device, "bf16": a.bf16, "pretokenized": a.pretokenized,
                      "steps": a.steps, "batch": a.batch, "samples_per_s": seen / dt, "final_loss": loss.item()}))


def cmd_score(a, ref):
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    rows = [json.loads(line) for line in open(a.data, encoding="utf-8") if line.strip()][: a.limit]
    tok = word_tokenizer(ref, rows, a.vocab_size)
    model = build_model(ref, a, len(tok.vocab), 1, device).eval()

    def batch(i):
        chunk = rows[i:i + a.batch]
        return ref.batch_encode(tok, [(r["query"], r.get("title", "")) for r in chunk], a.max_len)

    starts = range(0, len(rows), a.batch)
    ready = [batch(i) for i in starts] if a.pretokenized else None
    sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
        for k, i in enumerate(starts):
            ids, types, mask = to_device(ready[k] if ready else batch(i), device)
            model(ids, types, mask)[0].float().cpu()  # the scores come back, as a scorer's must
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "bert_ref.py forward on " + a.device, "bf16": a.bf16, "pretokenized": a.pretokenized,
                      "pairs": len(rows), "pairs_per_s": len(rows) / dt}))


def cmd_matmul(a, ref):
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        x = torch.randn(a.size, a.size, device=a.device, dtype=dtype)
        y = torch.randn(a.size, a.size, device=a.device, dtype=dtype)
        for _ in range(3):
            x @ y
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            x @ y
        torch.cuda.synchronize()
        out[name + "_tflops"] = 10 * 2 * a.size ** 3 / (time.perf_counter() - t0) / 1e12
    out["device"] = torch.cuda.get_device_name()
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="path of bert_ref.py")
    p.add_argument("--device", default="cuda")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "score"):
        s = sub.add_parser(name)
        s.add_argument("--data", required=True)
        s.add_argument("--vocab-size", type=int, default=8000)
        s.add_argument("--layers", type=int, default=12)
        s.add_argument("--hidden", type=int, default=768)
        s.add_argument("--heads", type=int, default=12)
        s.add_argument("--batch", type=int, default=32)
        s.add_argument("--max-len", type=int, default=128)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--bf16", action="store_true")
        s.add_argument("--pretokenized", action="store_true")
    sub.choices["train"].add_argument("--steps", type=int, default=300)
    sub.choices["train"].add_argument("--lr", type=float, default=1e-4)
    sub.choices["score"].add_argument("--limit", type=int, default=50000)
    sub.add_parser("matmul").add_argument("--size", type=int, default=8192)
    a = p.parse_args()
    ref = load_reference(a.ref)
    {"train": cmd_train, "score": cmd_score, "matmul": cmd_matmul}[a.cmd](a, ref)


if __name__ == "__main__":
    main()
