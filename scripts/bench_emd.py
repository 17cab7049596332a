#!/usr/bin/python3
"""Exact EMD throughput: ddaq vs POT's ot.emd2 loop vs pyemd, same pairs, one run.

Usage: /usr/bin/python3 scripts/bench_emd.py [--pairs N] [--build build]
Pairs: real CMS HGCAL wafers (../shared/data; synthetic if absent) and their
reconstructions (scripts/emd_pairs.py), sparse (0PU) and dense (jet pool
overlay, mu = 40). Prints per-pair times and the ratios; ddaq single-threaded
and with all threads. Not a test: timings are noisy, ratios are the result.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emd_pairs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    ddaq = os.path.join(args.build, "core", "ddaq")
    bench = os.path.join(args.build, "surrogates", "emd_bench")
    env = dict(os.environ, DDAQ_PROGRESS="off")
    import ot
    import pyemd

    m = emd_pairs.ground_metric()
    with tempfile.TemporaryDirectory() as tmp:
        jet_csv = os.path.join(ROOT, "..", "shared", "data", "hgcal", "jet_pt20_eta15-30_0PU.csv")
        base = os.path.join(tmp, "base.h5")
        if os.path.exists(jet_csv):
            subprocess.run([ddaq, "data", "import", jet_csv, "-o", base], check=True, env=env, capture_output=True)
            source = "real jet sample"
        else:
            subprocess.run([ddaq, "data", "synth", "-o", base, "--events", "20000", "--electron-fraction", "0"],
                           check=True, env=env, capture_output=True)
            source = "synthetic jets (../shared/data absent)"
        pu = os.path.join(tmp, "pu40.h5")
        subprocess.run([ddaq, "data", "overlay", base, "--pool", base, "--mu", "40", "--seed", "1", "-o", pu],
                       check=True, env=env, capture_output=True)
        print(f"pairs: {args.pairs} per case, wafers from the {source}, reconstructions from scripts/emd_pairs.py")
        for label, path in (("sparse (0PU)", base), ("dense (mu 40)", pu)):
            with h5py.File(path) as f:
                x = f["calq"][: args.pairs].astype(np.float64)
            y = emd_pairs.reconstructions(x, seed=5)
            for name, arr in (("a.h5", x), ("b.h5", y)):
                with h5py.File(os.path.join(tmp, name), "w") as f:
                    f["calq"] = arr.astype(np.float32)
            a = x.astype(np.float32).astype(np.float64)
            b = y.astype(np.float32).astype(np.float64)
            a /= a.sum(1, keepdims=True)
            b /= b.sum(1, keepdims=True)
            t = time.perf_counter()
            for i in range(len(a)):
                ot.emd2(a[i], b[i], m)
            pot_us = 1e6 * (time.perf_counter() - t) / len(a)
            t = time.perf_counter()
            for i in range(len(a)):
                pyemd.emd(a[i], b[i], m)
            pyemd_us = 1e6 * (time.perf_counter() - t) / len(a)
            r = subprocess.run([bench, os.path.join(tmp, "a.h5"), os.path.join(tmp, "b.h5"), "5"], check=True,
                               capture_output=True, text=True)
            ours = json.loads(r.stdout)
            occ = float((x > 0).sum(1).mean())
            print(f"{label}: mean occupancy {occ:.1f}, mean pivots {ours['mean_pivots']:.1f}")
            print(f"  POT   {pot_us:9.2f} us/pair | pyemd {pyemd_us:9.2f} us/pair")
            print(f"  ddaq  {ours['us_per_pair_1thread']:9.2f} us/pair (1 thread) -> {pot_us / ours['us_per_pair_1thread']:7.1f}x POT, "
                  f"{pyemd_us / ours['us_per_pair_1thread']:7.1f}x pyemd")
            print(f"  ddaq  {ours['us_per_pair_all']:9.2f} us/pair ({ours['threads']} threads) -> "
                  f"{pot_us / ours['us_per_pair_all']:7.1f}x POT")
            print("  where one thread's time goes (ExactEmd::Profile):")
            for line in ours["profile"].strip().splitlines():
                print("    " + line)


if __name__ == "__main__":
    main()
