#!/usr/bin/python3
"""Matmul peak of this machine's LibTorch (Debian's python3-torch loads the same
libtorch_cpu.so.1.13 that dqe links): fp32 through the BLAS, bf16 through oneDNN.
Prints one JSON object: GFLOP/s per dtype and size, and the best per dtype."""
import argparse
import json
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=2.0)
a = ap.parse_args()
torch.set_num_threads(a.threads)
out = {"threads": a.threads, "torch": torch.__version__, "results": {}}
for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
    best = 0.0
    for n in (768, 1024, 2048):
        x = torch.randn(n, n).to(dtype)
        y = torch.randn(n, n).to(dtype)
        torch.matmul(x, y)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            torch.matmul(x, y)
            reps += 1
        gflops = 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9
        out["results"][f"{name}_{n}"] = round(gflops, 1)
        best = max(best, gflops)
    out[f"{name}_best_gflops"] = round(best, 1)
print(json.dumps(out))
