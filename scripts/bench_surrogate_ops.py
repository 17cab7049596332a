#!/usr/bin/python3
"""Where the EMD surrogate's CPU time goes: its forward pass, op by op.

Usage: /usr/bin/python3 scripts/bench_surrogate_ops.py [--batch N]
The same tensor ops as EmdSurrogate's forward (surrogates/src/emd_surrogate.cpp:
48 cells, 32 directions, MLP 81 -> 96 -> 64 -> 1 run for d and -d) in PyTorch
1.13, the library Debian's LibTorch is built from, one thread, random inputs of
the real shapes (op costs do not depend on the values). Prints microseconds per
pair for each op. Not a test: timings are noisy.
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1024)  # EmdSurrogate::predict's CPU block
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n, cells, directions = args.batch, 48, 32
    a, b = torch.rand(n, cells), torch.rand(n, cells)
    permutation = torch.stack([torch.randperm(cells) for _ in range(directions)]).reshape(-1)
    gaps = torch.rand(directions, cells - 1)
    mlp = torch.nn.Sequential(torch.nn.Linear(cells + directions + 1, 96), torch.nn.SiLU(),
                              torch.nn.Linear(96, 64), torch.nn.SiLU(), torch.nn.Linear(64, 1))
    total = 0.0

    def timed(name, fn):
        nonlocal total
        fn()
        t = time.perf_counter()
        for _ in range(args.repeats):
            out = fn()
        us = 1e6 * (time.perf_counter() - t) / args.repeats / n
        total += us
        print(f"  {name:44s} {us:7.3f} us/pair")
        return out

    print(f"batch {n}, 1 thread, torch {torch.__version__}")
    with torch.no_grad():
        d = timed("normalize, difference", lambda: a / a.sum(1, keepdim=True) - b / b.sum(1, keepdim=True))
        u = timed("scale to unit L1", lambda: d / d.abs().sum(1, keepdim=True).clamp_min(1e-12))
        along = timed("index_select (cells along each direction)",
                      lambda: u.index_select(1, permutation).view(n, directions, cells))
        cum = timed("cumsum along each direction", lambda: along.cumsum(2))
        sliced = timed("|cumsum| x gaps, summed", lambda: (cum.narrow(2, 0, cells - 1).abs() * gaps).sum(2))
        lower = sliced.max(1, keepdim=True)[0]
        common = torch.cat([sliced, lower], 1)
        x = torch.cat([u * 8.0, common], 1)
        timed("MLP, twice (d and -d)", lambda: (mlp(x), mlp(-x)))
    print(f"  {'sum':44s} {total:7.3f} us/pair")


if __name__ == "__main__":
    main()
