#!/usr/bin/env python3
"""Logits of a Hugging Face BERT directory computed by the plain-PyTorch reference
(../shared/reference/bert_ref.py: Hugging Face's module names and maths, BERT's WordPiece),
loaded the way BertForSequenceClassification.from_pretrained and BertTokenizer read it:
config.json (num_labels), model.safetensors (strict: every name Hugging Face's), vocab.txt and
tokenizer_config.json (do_lower_case, model_max_length). An oracle for dqe's export tests.

usage: hf_reference_logits.py REFERENCE_DIR MODEL_DIR PAIRS.jsonl
PAIRS.jsonl holds {"query": ..., "text": ...} lines; prints one JSON list of logits per line.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import bert_ref  # noqa: E402
import torch  # noqa: E402


def main():
    model_dir, pairs = sys.argv[2], sys.argv[3]
    with open(f"{model_dir}/config.json") as f:
        cfg = json.load(f)
    with open(f"{model_dir}/tokenizer_config.json") as f:
        tok_cfg = json.load(f)
    if tok_cfg.get("tokenizer_class") != "BertTokenizer":
        sys.exit(f"{model_dir}: tokenizer_class is not BertTokenizer")
    tok = bert_ref.WordPiece.load(f"{model_dir}/vocab.txt", lower=tok_cfg["do_lower_case"])
    model = bert_ref.BertForSequenceClassification(cfg)
    state = {k: v.float() for k, v in bert_ref.load_safetensors(f"{model_dir}/model.safetensors").items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad(), open(pairs, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids, types, mask = bert_ref.batch_encode(tok, [(r["query"], r["text"])], tok_cfg["model_max_length"])
            print(json.dumps(model(ids, types, mask)[0][0].tolist()))


if __name__ == "__main__":
    main()
