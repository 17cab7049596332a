#!/usr/bin/python3
"""How accurate is the shipped EMD surrogate where the ECON-T pipeline uses it?

Pairs it never saw in training: (test wafer, autoencoder output) from trained
runs, and (test wafer, super-trigger-cell truncation) with 2x2 and 4x4
groups. Prints the relative error (surrogate - exact) / exact: mean, std,
percentiles, per pair kind. Not a test: a measurement for docs/emd.md.

Usage: PYTHONPATH=build/python /usr/bin/python3 scripts/surrogate_ood_check.py \
           --data runs/data/econt/test_mu40.h5 --runs runs/econt_experiment/surrogate_16 ...
"""
import argparse
import csv
import os

import h5py
import numpy as np

import ddaq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def super_cells(x, group):
    """Sum per 2x2 (group 4) or 4x4 (group 16) block, placed at the block's largest cell."""
    with open(os.path.join(ROOT, "core", "data", "hgcal_geometry.csv")) as f:
        rows = list(csv.DictReader(f))
    block = np.zeros(48, dtype=int)
    for r in rows:
        b = int(r["block4x4"])
        blk, row, col = b // 16, (b % 16) // 4, b % 4
        block[int(r["tc"])] = blk if group == 16 else blk * 4 + (row // 2) * 2 + col // 2
    y = np.zeros_like(x)
    for g in np.unique(block):
        cells = np.where(block == g)[0]
        sums = x[:, cells].sum(1)
        top = cells[np.argmax(x[:, cells], axis=1)]
        y[np.arange(len(x)), top] = sums
    return y


def report(name, a, b, surrogate):
    keep = (a.sum(1) > 0) & (b.sum(1) > 0)
    a, b = a[keep], b[keep]
    a = a / a.sum(1, keepdims=True)
    b = b / b.sum(1, keepdims=True)
    exact = ddaq.emd(a.astype(np.float32), b.astype(np.float32))
    pred = surrogate.predict(a.astype(np.float32), b.astype(np.float32))
    ok = exact > 1e-6
    rel = (pred[ok] - exact[ok]) / exact[ok]
    p = np.percentile(rel, [5, 50, 95])
    print(f"{name:<34} {ok.sum():>6} pairs  EMD {exact[ok].mean():.3f}  rel. error mean {rel.mean():+.4f} "
          f"std {rel.std():.4f}  p5/p50/p95 {p[0]:+.3f}/{p[1]:+.3f}/{p[2]:+.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="test event file (calq)")
    ap.add_argument("--runs", nargs="*", default=[], help="trained pipeline runs")
    ap.add_argument("--surrogate", default=os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt"))
    ap.add_argument("--events", type=int, default=5000)
    args = ap.parse_args()
    with h5py.File(args.data, "r") as f:
        x = np.asarray(f["calq"][: args.events], dtype=np.float64)
    s = ddaq.EmdSurrogate.load(args.surrogate)
    print(f"surrogate {args.surrogate} ({s.parameter_count} parameters), wafers {args.data}")
    for group in (4, 16):
        report(f"super trigger cells, {group} cells", x, super_cells(x, group), s)
    for run in args.runs:
        y = ddaq.Pipeline.load(run).predict(x.astype(np.float32))["reconstruction"].astype(np.float64)
        report(f"autoencoder {os.path.basename(run.rstrip('/'))}", x, y, s)


if __name__ == "__main__":
    main()
