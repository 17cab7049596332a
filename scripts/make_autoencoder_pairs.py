#!/usr/bin/python3
"""Autoencoder outputs as they train, as (wafer, reconstruction) pairs for the EMD surrogate.

Usage: /usr/bin/python3 scripts/make_autoencoder_pairs.py DIR

DIR holds the files of scripts/make_emd_datasets.sh. Trains three small
ECON-T autoencoders with losses that do not involve the surrogate (telescope,
MSE, weighted MSE; different latent sizes and pileup), each stopped after
30 and 120 steps and at the end of 2 epochs: 9 snapshots, from crude to
good. Then, for every train_*.h5 and test_*.h5 file in DIR, writes
NAME.ae.h5: row i reconstructed by snapshot i mod 9 (`calq`, same rows as
NAME.h5). Pair them with
`ddaq surrogate emd train|eval --pairs DIR/NAME.h5:DIR/NAME.ae.h5`.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("DDAQ_BUILD_DIR", os.path.join(ROOT, "build")), "python"))
import ddaq  # noqa: E402

# (name, training file, loss, latents) -- none uses the EMD surrogate, so the
# surrogate trained on these pairs does not depend on an earlier surrogate.
AUTOENCODERS = (
    ("telescope_16", "train_j40.h5", "telescope", 16),
    ("mse_36", "train_j10.h5", "mse", 36),
    ("weighted_mse_24", "train_e0.h5", "weighted_mse", 24),
)
SNAPSHOT_STEPS = (30, 120, None)  # None: the whole 2 epochs


def config(loss, latents):
    return {
        "name": f"emd-pairs-{loss}-{latents}",
        "data": {"source": "synth", "train_events": 1000, "test_events": 500, "pool_events": 500, "seed": 1},
        "pipeline": {"layout": "8x8", "conv_filters": 8, "latent": latents, "latent_bits": 3,
                     "latent_integer_bits": 2, "weight_bits": 6, "input_bits": 10, "threshold": 0.0,
                     "learn_threshold": True, "classifier_hidden": 8},
        "training": {"epochs": 2, "batch_size": 256, "learning_rate": 0.003, "seed": 1, "threads": 1,
                     "loss": loss, "reconstruction_weight": 1.0, "classification_weight": 0.1},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    args = ap.parse_args()
    exe = os.path.join(os.environ.get("DDAQ_BUILD_DIR", os.path.join(ROOT, "build")), "core", "ddaq")
    env = dict(os.environ, DDAQ_PROGRESS="off")
    runs = []
    for name, train_file, loss, latents in AUTOENCODERS:
        cfg = os.path.join(args.dir, f"ae_{name}.json")
        with open(cfg, "w") as f:
            json.dump(config(loss, latents), f)
        for steps in SNAPSHOT_STEPS:
            run = os.path.join(args.dir, f"ae_{name}_{steps or 'end'}")
            cmd = [exe, "train", cfg, "--data", os.path.join(args.dir, train_file), "-o", run, "--overwrite"]
            if steps:
                cmd += ["--max-steps", str(steps)]
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            runs.append(run)
            print(f"trained {os.path.basename(run)}", flush=True)
    pipelines = [ddaq.Pipeline.load(r) for r in runs]
    files = sorted(glob.glob(os.path.join(args.dir, "train_*.h5")) + glob.glob(os.path.join(args.dir, "test_*.h5")))
    for path in files:
        if path.endswith(".ae.h5") or path.endswith("_v.h5"):  # pileup variations: not needed
            continue
        with h5py.File(path) as f:
            x = f["calq"][:].astype(np.float32)
        y = np.zeros_like(x)
        for k, p in enumerate(pipelines):
            sel = np.arange(k, len(x), len(pipelines))
            y[sel] = p.predict(x[sel])["reconstruction"]
        out = path[: -len(".h5")] + ".ae.h5"
        tmp = out + ".tmp"
        with h5py.File(tmp, "w") as f:
            f["calq"] = y.astype(np.float32)
            f.attrs["source"] = f"autoencoder snapshots of scripts/make_autoencoder_pairs.py on {os.path.basename(path)}"
        os.replace(tmp, out)
        print(f"wrote {os.path.basename(out)} ({len(y)} rows)", flush=True)


if __name__ == "__main__":
    main()
