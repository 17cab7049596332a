#!/usr/bin/env python3
"""Benchmark for issue 15's goal "per-latent bits beat uniform bits at equal e-links".

Two budgeted co-design runs per e-link count and training seed, identical but
for `pipeline.per_latent_bits`: one learned width shared by all latents
(uniform) or one learned width per latent. Each is a `ddaq sweep` over the
e-link budgets; every sweep trains on the same events (the first one makes
them). Prints, per e-link count, the mean exact EMD of each over the seeds,
their ratio (per-latent / uniform, below 1 means per-latent is better), on
how many seeds per-latent wins, and the widths it chose.

  /usr/bin/python3 scripts/per_latent_bits.py --config experiments/econt/codesign.json \
      --elinks 2,3,4 --seeds 1,2,3,4 -o runs/per_latent_bits --jobs 2

Needs `ddaq` on PATH (build/core). Writes OUT/<mode>_seed<S>/ (one sweep
each, its pareto.csv and runs) and OUT/per_latent_bits.csv.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time


def sweep(config, elinks, out, jobs, data):
    cmd = ["ddaq", "sweep", config, "--budget", "elinks=" + elinks, "-o", out, "--jobs", str(jobs)]
    if data:
        cmd += ["--data", data[0], "--test", data[1]]
    if os.path.exists(os.path.join(out, "sweep.json")):
        cmd.append("--resume")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader(open(os.path.join(out, "pareto.csv"))))
    return {int(r["budget_elinks"]): r for r in rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/econt/codesign.json")
    ap.add_argument("--elinks", default="2,3,4")
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("-o", "--output", default="runs/per_latent_bits")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    out = os.path.abspath(a.output)
    os.makedirs(out, exist_ok=True)
    base = json.load(open(a.config))
    cfg_dir = os.path.dirname(os.path.abspath(a.config))
    surrogate = os.path.normpath(os.path.join(cfg_dir, base["training"]["surrogate"]))
    targets = [int(x) for x in a.elinks.split(",")]
    t0 = time.time()
    data = None
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        for mode in ("uniform", "per_latent"):
            c = json.loads(json.dumps(base))
            c["pipeline"]["learn_latent_bits"] = True
            c["pipeline"]["per_latent_bits"] = mode == "per_latent"
            c["training"]["seed"] = seed
            c["training"]["surrogate"] = surrogate
            name = "%s_seed%d" % (mode, seed)
            cfg = os.path.join(out, name + ".json")
            json.dump(c, open(cfg, "w"), indent=1)
            result = sweep(cfg, a.elinks, os.path.join(out, name), a.jobs, data)
            if data is None:
                data = (os.path.join(out, name, "data", "train.h5"), os.path.join(out, name, "data", "test.h5"))
            for e in targets:
                r = result[e]
                ev = json.load(open(os.path.join(r["run"], "eval.json")))
                rows.append({"elinks_budget": e, "seed": seed, "mode": mode, "elinks": int(r["elinks"]),
                             "payload_bits": int(r["payload_bits"]), "emd_mean": float(r["emd_mean"]),
                             "widths": " ".join(str(w) for w in ev["latent_widths"]),
                             "best_choice_emd_mean": float(r["best_choice_emd_mean"])})
    with open(os.path.join(out, "per_latent_bits.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    print("e-links | uniform: mean EMD | per-latent: mean EMD | per-latent / uniform | per-latent wins | "
          "payload bits (uniform, per-latent)")
    for e in targets:
        u = {r["seed"]: r for r in rows if r["elinks_budget"] == e and r["mode"] == "uniform"}
        p = {r["seed"]: r for r in rows if r["elinks_budget"] == e and r["mode"] == "per_latent"}
        mu = sum(r["emd_mean"] for r in u.values()) / len(u)
        mp = sum(r["emd_mean"] for r in p.values()) / len(p)
        wins = sum(p[s]["emd_mean"] < u[s]["emd_mean"] for s in u)
        over = [r for r in list(u.values()) + list(p.values()) if r["elinks"] > e]
        print("%7d | %.4f | %.4f | %.3f | %d of %d | %s, %s%s" % (
            e, mu, mp, mp / mu, wins, len(u), "/".join(str(r["payload_bits"]) for r in u.values()),
            "/".join(str(r["payload_bits"]) for r in p.values()), "  OVER BUDGET: %d runs" % len(over) if over else ""))
    print("all of it %.0f s" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
