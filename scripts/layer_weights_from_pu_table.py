#!/usr/bin/python3
"""Layer weights (occupancy.layer_weights, docs/detector.md) read off the real
PU allocation, which the ECON-T designers sized by each module's data volume
at 200 pileup: a longitudinal profile the flux model alone lacks.

Usage: /usr/bin/python3 scripts/layer_weights_from_pu_table.py PLAN [--min-elinks 3]
  PLAN: a `ddaq detector plan` folder made without layer weights (its
  allocation.csv gives each module's model mu, proportional to its flux,
  and its PU-table e-links). Prints {"layer_weights": {...}} for a config's
  "occupancy" section, and the fit on stderr.

The fit: log(e_pu) = beta log(mu) + gamma_layer over the modules with at
least --min-elinks e-links (above the table's floor of 2, where e-links
still follow the data volume). A layer's weight, exp((gamma_layer -
gamma_1) / beta), is the factor on its flux that puts its modules on layer
1's curve: the flux a module in it would need, at equal e-links, in the
table's own eta dependence. Layers with fewer than 5 such modules (the
hadronic section, where the table is at its floor) repeat the fit with
every module (floor included, which flattens beta) and are scaled to the
last layer both fits share. A heuristic reading of a table, not a shower
simulation: docs/detector.md says what it moves.
"""
import argparse
import csv
import json
import math
import sys

import numpy as np


def fit(layer, mu, e, keep):
    rows = keep & (e > 0) & (mu > 0)
    layers = [l for l in sorted(set(layer[rows].tolist())) if (rows & (layer == l)).sum() >= 5]
    x = np.column_stack([np.log(mu[rows])] + [(layer[rows] == l).astype(float) for l in layers])
    coef, *_ = np.linalg.lstsq(x, np.log(e[rows]), rcond=None)
    beta, gamma = coef[0], dict(zip(layers, coef[1:]))
    return beta, gamma


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("plan")
    p.add_argument("--min-elinks", type=int, default=3)
    a = p.parse_args()
    try:
        report = json.load(open(f"{a.plan}/report.json"))
        rows = list(csv.DictReader(open(f"{a.plan}/allocation.csv")))
    except (OSError, ValueError) as err:
        sys.exit(f"layer_weights_from_pu_table: {a.plan}: {err}")
    if report.get("occupancy_model", {}).get("layer_weights"):
        sys.exit(f"layer_weights_from_pu_table: {a.plan}: planned with layer weights already (use a flat plan)")
    layer = np.array([int(r["layer"]) for r in rows])
    mu = np.array([float(r["mu"]) for r in rows])
    e = np.array([int(r["elinks_pu"]) for r in rows])
    beta, gamma = fit(layer, mu, e, e >= a.min_elinks)
    if beta <= 0 or min(gamma) != min(layer):
        sys.exit(f"layer_weights_from_pu_table: {a.plan}: no usable fit (beta {beta:.3f})")
    first = min(gamma)
    weights = {l: math.exp((g - gamma[first]) / beta) for l, g in gamma.items()}
    missing = sorted(set(layer.tolist()) - set(weights))
    if missing:
        beta_all, gamma_all = fit(layer, mu, e, np.ones_like(e, dtype=bool))
        shared = max(l for l in weights if l in gamma_all)
        for l in missing:
            weights[l] = weights[shared] * math.exp((gamma_all[l] - gamma_all[shared]) / beta_all)
        print(f"fit over {int((e >= a.min_elinks).sum())} modules: beta {beta:.3f}; layers {missing[0]}-{missing[-1]} "
              f"from every module (beta {beta_all:.3f}), scaled at layer {shared}", file=sys.stderr)
    print(" ".join(f"{l}:{weights[l]:.2f}" for l in sorted(weights)), file=sys.stderr)
    print(json.dumps({"layer_weights": {str(l): round(weights[l], 4) for l in sorted(weights)}}))


if __name__ == "__main__":
    main()
