#!/usr/bin/env python3
"""Benchmark for issue 15's first goal: budgeted runs vs a grid of fixed designs.

From an over-budget start (the config's latent: 16 latents x 9 bits = 5
e-links, learned bits), `ddaq sweep --budget elinks=...` trains one budgeted
run per e-link count. Beside it, a grid of fixed designs (latent count L x
latent bits b, the widest b whose payload fits those e-links, learned bits
off, otherwise the same config) trains on the same events. Prints, per
e-link count: the budgeted run's exact EMD, the best fixed design's, their
ratio (goal <= 1.05) and the budgeted run's time over the mean grid point's
(goal <= 2).

  /usr/bin/python3 scripts/codesign_grid.py --config experiments/econt/codesign.json \
      --elinks 2,3,4 -o runs/codesign_grid --jobs 2 [--seed S] [--raise-silent-units on|off]

Needs `ddaq` on PATH (build/core). Writes OUT/budgeted (the sweep),
OUT/grid/<design> (fixed runs) and OUT/grid.csv.
"""
import argparse
import concurrent.futures
import csv
import json
import os
import subprocess
import sys
import time

PAYLOAD_HEADER, ELINK_BITS = 18, 32  # ECON-T frame: capacity 18 + 32 (E - 1) bits


def elinks_for(payload_bits):
    """E-links the ECON-T frame needs for this payload (independent of ddaq's code)."""
    e = 1
    while PAYLOAD_HEADER + ELINK_BITS * (e - 1) < payload_bits:
        e += 1
    return e


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/econt/codesign.json")
    ap.add_argument("--elinks", default="2,3,4")
    ap.add_argument("--latents", default="8,12,16,24")
    ap.add_argument("--max-bits", type=int, default=9)
    ap.add_argument("-o", "--output", default="runs/codesign_grid")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="training.seed of every run (default: the config's)")
    ap.add_argument("--raise-silent-units", choices=["on", "off"], default=None,
                    help="training.raise_silent_units of every run (default: the config's)")
    a = ap.parse_args()
    targets = [int(x) for x in a.elinks.split(",")]
    out = os.path.abspath(a.output)
    os.makedirs(out + "/grid", exist_ok=True)

    # The config as every run here uses it (its own copy in OUT, so paths are absolute).
    base = json.load(open(a.config))
    cfg_dir = os.path.dirname(os.path.abspath(a.config))
    surrogate = os.path.normpath(os.path.join(cfg_dir, base["training"]["surrogate"]))
    base["training"]["surrogate"] = surrogate
    if a.seed is not None:
        base["training"]["seed"] = a.seed
    if a.raise_silent_units is not None:
        base["training"]["raise_silent_units"] = a.raise_silent_units == "on"
    config = out + "/config.json"
    json.dump(base, open(config, "w"), indent=1)

    # 1. The budgeted runs (and the data every run here uses).
    t0 = time.time()
    sweep = ["ddaq", "sweep", config, "--budget", "elinks=" + a.elinks, "-o", out + "/budgeted", "--jobs",
             str(a.jobs)]
    if os.path.exists(out + "/budgeted/sweep.json"):
        sweep.append("--resume")
    subprocess.run(sweep, check=True, stdout=subprocess.DEVNULL)
    budgeted = {int(r["budget_elinks"]): r for r in csv.DictReader(open(out + "/budgeted/pareto.csv"))}
    state = json.load(open(out + "/budgeted/state.json"))
    train, test = out + "/budgeted/data/train.h5", out + "/budgeted/data/test.h5"

    # 2. The fixed grid: for each L, the widest b with elinks_for(L b) == E.
    designs = []
    for e in targets:
        for latent in [int(x) for x in a.latents.split(",")]:
            fits = [b for b in range(1, a.max_bits + 1) if elinks_for(latent * b) == e]
            if fits:
                designs.append((e, latent, max(fits)))

    def fixed(design):
        e, latent, bits = design
        name = "L%d_b%d" % (latent, bits)
        run_dir = out + "/grid/" + name
        c = json.loads(json.dumps(base))
        c["pipeline"].update({"latent": latent, "latent_bits": bits, "latent_integer_bits": min(2, bits),
                              "learn_latent_bits": False})
        c["training"].pop("budgets", None)
        cfg = out + "/grid/" + name + ".json"
        json.dump(c, open(cfg, "w"), indent=1)
        log = out + "/grid/" + name + ".log"
        start = time.time()
        if not os.path.exists(run_dir + "/eval.json"):
            run(["ddaq", "train", cfg, "-o", run_dir, "--data", train, "--overwrite"], log)
            run(["ddaq", "eval", run_dir, "--data", test, "--events", "20000"], log)
        ev = json.load(open(run_dir + "/eval.json"))
        return {"elinks_target": e, "design": name, "latent": latent, "bits": bits, "elinks": ev["elinks"],
                "emd_mean": ev["emd_mean"], "seconds": time.time() - start}

    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        grid = list(pool.map(fixed, designs))
    with open(out + "/grid.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(grid[0].keys()))
        w.writeheader()
        w.writerows(grid)
    mean_grid_s = sum(g["seconds"] for g in grid) / len(grid)

    print("e-links | budgeted: final bits, EMD | best fixed design: EMD | budgeted/best | time budgeted/grid point")
    for e in targets:
        b = budgeted[e]
        cands = [g for g in grid if g["elinks_target"] == e]
        best = min(cands, key=lambda g: g["emd_mean"])
        secs = state.get("elinks%d" % e, {}).get("seconds", float("nan"))
        print("%7d | %s x %s bits (%s e-links), %.4f | %s, %.4f | %.3f | %.2f" % (
            e, base["pipeline"]["latent"], b["latent_bits"], b["elinks"], float(b["emd_mean"]), best["design"], best["emd_mean"],
            float(b["emd_mean"]) / best["emd_mean"], secs / mean_grid_s))
    print("grid: %d fixed designs, mean %.1f s each (train + eval); all of it %.0f s" % (
        len(grid), mean_grid_s, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
