#!/usr/bin/env python3
"""Is int8 faster than float32 for dqe's Linear layers on this CPU? Times a 4x256 encoder's
Linear shapes (2048 token rows: a batch of 32 at 64 tokens; 256 -> 256, 256 -> 1024,
1024 -> 256) in float32 and with LibTorch's dynamic int8 linear (per-channel weights) under
each quantized engine this build has, at 2 threads. Prints one line per engine with the
time per forward of the three layers and the ratio to float32.
Usage: /usr/bin/python3 scripts/bench/int8_linear.py [--rows 2048] [--repeats 200] 2>/dev/null
(qnnpack writes a warning to stderr on every call)."""
import argparse
import time

import torch


def timed(fn, x, repeats):
    for _ in range(10):
        fn(x)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return (time.perf_counter() - start) / repeats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    shapes = [(256, 256), (256, 1024), (1024, 256)]
    layers = [torch.nn.Linear(i, o) for i, o in shapes]
    inputs = [torch.randn(args.rows, i) for i, _ in shapes]

    def run(mods):
        def f(_):
            with torch.inference_mode():
                for m, x in zip(mods, inputs):
                    m(x)
        return f

    fp32 = timed(run(layers), None, args.repeats)
    print(f"float32: {1e3 * fp32:.2f} ms per forward of the three layers ({args.rows} rows, 2 threads)")
    for engine in torch.backends.quantized.supported_engines:
        if engine == "none":
            continue
        torch.backends.quantized.engine = engine
        q = [torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(m), {torch.nn.Linear}, dtype=torch.qint8)
             for m in layers]
        t = timed(run(q), None, args.repeats)
        err = max((a(x) - b(x)).abs().max().item() / b(x).abs().max().item() for a, b, x in zip(q, layers, inputs))
        print(f"int8 dynamic, {engine}: {1e3 * t:.2f} ms ({fp32 / t:.2f}x float32's speed; max error {err:.4f} of the range)")


if __name__ == "__main__":
    main()
