#!/usr/bin/env bash
# Real-data event files for the ECON-T experiment (experiments/econt/main.json):
# CMS HGCAL electron (label 1) and jet (label 0) wafers, a random 80/20
# train/test split (10% of train held out for validation), pileup overlay
# at mu = 40 (train, validation, test) and mu = 10 (test) from a pool of the
# jets of the fit split only: no test or validation wafer is ever pileup.
# Usage: scripts/make_econt_real.sh [OUT_DIR] [SHARED_DATA_DIR]   (default runs/data/econt)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/runs/data/econt}"
data="${2:-$root/../shared/data}/hgcal"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
export DDAQ_PROGRESS=off
mkdir -p "$out"
"$ddaq" data import "$data/electron_pt20_eta15-30_0PU.csv" "$data/jet_pt20_eta15-30_0PU.csv" --label 1 --label 0 -o "$out/all_0pu.h5"
"$ddaq" data split "$out/all_0pu.h5" --train "$out/train_0pu.h5" --test "$out/test_0pu.h5" --test-fraction 0.2 --seed 1
# A validation split (10% of the training wafers) for early stopping; the test split stays untouched.
"$ddaq" data split "$out/train_0pu.h5" --train "$out/fit_0pu.h5" --test "$out/val_0pu.h5" --test-fraction 0.1 --seed 2
"$ddaq" data slice "$out/fit_0pu.h5" --label 0 -o "$out/pool.h5"
rm -f "$out/jets.h5" "$out/jets_unused.h5"  # made by earlier versions of this script (pool with test jets)
"$ddaq" data overlay "$out/fit_0pu.h5" --pool "$out/pool.h5" --mu 40 --seed 11 -o "$out/train_mu40.h5"
"$ddaq" data overlay "$out/val_0pu.h5" --pool "$out/pool.h5" --mu 40 --seed 14 -o "$out/val_mu40.h5"
"$ddaq" data overlay "$out/test_0pu.h5" --pool "$out/pool.h5" --mu 40 --seed 12 -o "$out/test_mu40.h5"
"$ddaq" data overlay "$out/test_0pu.h5" --pool "$out/pool.h5" --mu 10 --seed 13 -o "$out/test_mu10.h5"
