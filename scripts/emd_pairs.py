"""Pairs (wafer, plausible reconstruction) for EMD tests and benchmarks.

Used by tests/python/test_emd_vs_pot.py and scripts/bench_emd.py. Plain numpy;
deterministic for a seed. Kinds of reconstruction, in equal shares:
  best_choice  keep the k largest cells, k from the e-link table (1, 4, 6, 9, 14)
  smear        multiplicative log-normal noise on every hit cell plus small
               additive noise on a few empty cells
  leak         move a random fraction of each cell's energy to a random cell
  other        an unrelated wafer of the same sample
"""
import csv
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SENSOR_CELL_PITCH_CM = 1.20840075


def ground_metric():
    """48 x 48 distances between trigger-cell centres, sensor-cell pitch units."""
    with open(os.path.join(HERE, "..", "core", "data", "hgcal_geometry.csv")) as f:
        rows = list(csv.DictReader(f))
    xy = np.array([[float(r["x_cm"]), float(r["y_cm"])] for r in rows])
    return np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)) / SENSOR_CELL_PITCH_CM


def reconstructions(x, seed):
    """One plausible reconstruction per row of x (N x 48, non-negative)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    kind = rng.integers(0, 4, n)
    y = np.zeros_like(x, dtype=np.float64)
    # best choice
    k = rng.choice([1, 4, 6, 9, 14], n)
    order = np.argsort(-x, axis=1, kind="stable")
    keep = np.zeros_like(x, dtype=bool)
    for i in range(n):
        keep[i, order[i, : k[i]]] = True
    bc = np.where(keep, x, 0.0)
    # smear
    sm = x * rng.lognormal(0.0, 0.3, x.shape) + (rng.random(x.shape) < 0.1) * rng.exponential(1.0, x.shape)
    # leak
    frac = rng.uniform(0.05, 0.5, x.shape)
    lk = x * (1 - frac)
    dest = rng.integers(0, 48, x.shape)
    for i in range(n):
        np.add.at(lk[i], dest[i], x[i] * frac[i])
    # other wafer
    ot = x[rng.permutation(n)]
    for code, arr in enumerate((bc, sm, lk, ot)):
        y[kind == code] = arr[kind == code]
    empty = y.sum(1) <= 0
    y[empty] = x[empty]
    return y
