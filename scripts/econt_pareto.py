#!/usr/bin/python3
"""Pareto sweep of the ECON-T pipeline over its cost weights (docs/econt.md).

Trains the pipeline with learnable latent bits under e-link budgets and with
learnable weight bits under EBOPs weights, evaluates each run (exact EMD,
Best Choice, EBOPs, power), and writes OUT/pareto.csv and OUT/pareto.png
(EMD vs e-links, EBOPs and power).

Usage: /usr/bin/python3 scripts/econt_pareto.py [--config experiments/econt/quick.json] [--out runs/pareto]
       [--train FILE --test FILE]   (default: the config's synthetic data, made once in OUT/data)
"""
import argparse
import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=os.path.join(ROOT, "experiments", "econt", "quick.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "pareto"))
    ap.add_argument("--train")
    ap.add_argument("--test")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    ddaq = os.path.join(args.build, "core", "ddaq")
    env = dict(os.environ, DDAQ_PROGRESS="off")
    os.makedirs(args.out, exist_ok=True)
    base = json.load(open(args.config))
    base["training"]["surrogate"] = os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt")
    train, test = args.train, args.test
    if not train:
        data_cfg = os.path.join(args.out, "data.json")
        json.dump({"name": "pareto-data", "data": base["data"]}, open(data_cfg, "w"))
        subprocess.run([ddaq, "run", data_cfg, "-o", os.path.join(args.out, "data"), "--overwrite"], check=True, env=env,
                       capture_output=True)
        train, test = os.path.join(args.out, "data", "train.h5"), os.path.join(args.out, "data", "test.h5")
    points = []
    # Link budget sweep: learnable latent bits, hinge above the budget.
    for budget in (2, 3, 4):
        points.append(("link_budget", budget, {"learn_latent_bits": True, "latent_bits": 2 * budget + 1},
                       {"elinks_budget": budget + 0.5, "link_weight": 1.0}))
    # EBOPs sweep: learnable weight bits at a fixed latent (2 e-links).
    for w in (0.0, 1e-6, 1e-5):
        points.append(("ebops_weight", w, {"learn_weight_bits": True}, {"ebops_weight": w}))
    rows = []
    for kind, value, pipe, train_opts in points:
        cfg = json.loads(json.dumps(base))
        cfg["data"] = {"source": "files", "train": train, "test": test}
        cfg["pipeline"].update(pipe)
        cfg["training"].update(train_opts)
        name = f"{kind}_{value}"
        path = os.path.join(args.out, name + ".json")
        json.dump(cfg, open(path, "w"), indent=2)
        run = os.path.join(args.out, name)
        subprocess.run([ddaq, "train", path, "-o", run, "--data", train, "--overwrite"], check=True, env=env, capture_output=True)
        subprocess.run([ddaq, "eval", run, "--data", test], check=True, env=env, capture_output=True)
        e = json.load(open(os.path.join(run, "eval.json")))
        bc = {b["elinks"]: b["emd_mean"] for b in e["best_choice"]}
        rows.append({"sweep": kind, "value": value, "latent_bits": e["latent_bits"], "elinks": e["elinks"],
                     "emd_mean": round(e["emd_mean"], 4), "best_choice_emd": round(bc[e["elinks"]], 4),
                     "ratio": round(e["emd_mean"] / bc[e["elinks"]], 3), "ebops": round(e["encoder_ebops"]),
                     "power_mw": round(e["encoder_power_mw"], 2)})
        print(rows[-1], flush=True)
    with open(os.path.join(args.out, "pareto.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    bc_first = rows[0]
    e0 = json.load(open(os.path.join(args.out, f"{points[0][0]}_{points[0][1]}", "eval.json")))
    axes[0].plot([b["elinks"] for b in e0["best_choice"]], [b["emd_mean"] for b in e0["best_choice"]], "o-",
                 color="gray", label="Best Choice")
    for ax, key, label in zip(axes, ("elinks", "ebops", "power_mw"), ("e-links", "encoder EBOPs", "encoder power (mW, 45 nm)")):
        for kind, marker, color in (("link_budget", "s", "tab:red"), ("ebops_weight", "^", "tab:blue")):
            sel = [r for r in rows if r["sweep"] == kind]
            ax.plot([r[key] for r in sel], [r["emd_mean"] for r in sel], marker, color=color,
                    label=f"ddaq ({kind} sweep)")
        ax.set_xlabel(label)
        ax.set_ylabel("mean exact EMD")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "pareto.png"), dpi=100)
    print("wrote", os.path.join(args.out, "pareto.csv"), "and pareto.png")


if __name__ == "__main__":
    sys.exit(main())
