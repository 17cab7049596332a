#!/usr/bin/env bash
# Event files for the EMD surrogate study from the real CMS HGCAL samples:
# training wafers (first 80% of each sample) and held-out wafers (last 20%),
# at 0PU and overlaid with pileup from the training jets (mu 10, 40 for
# training; mu 20 and 80 held out as pileup levels never trained on).
# NAME_vN.h5: the same 0PU wafers with another pileup draw at mu N, row
# for row ("pileup variations": pair NAME.h5 with NAME_v.h5).
# Usage: scripts/make_emd_datasets.sh OUT_DIR [SHARED_DATA_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: make_emd_datasets.sh OUT_DIR [SHARED_DATA_DIR]}"
data="${2:-$root/../shared/data}/hgcal"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
export DDAQ_PROGRESS=off
mkdir -p "$out"
"$ddaq" data import "$data/electron_pt20_eta15-30_0PU.csv" -o "$out/electron.h5" --label 1 >/dev/null
"$ddaq" data import "$data/jet_pt20_eta15-30_0PU.csv" -o "$out/jet.h5" --label 0 >/dev/null
"$ddaq" data slice "$out/electron.h5" --stop 13906 -o "$out/train_e0.h5" >/dev/null
"$ddaq" data slice "$out/electron.h5" --start 13906 -o "$out/test_e0.h5" >/dev/null
"$ddaq" data slice "$out/jet.h5" --stop 32043 -o "$out/train_j0.h5" >/dev/null
"$ddaq" data slice "$out/jet.h5" --start 32043 -o "$out/test_j0.h5" >/dev/null
for split in train test; do
  for mu in 10 20 40 80; do
    "$ddaq" data overlay "$out/${split}_j0.h5" --pool "$out/train_j0.h5" --mu $mu --seed $mu -o "$out/${split}_j$mu.h5" >/dev/null
    "$ddaq" data overlay "$out/${split}_e0.h5" --pool "$out/train_j0.h5" --mu $mu --seed $((mu + 1)) -o "$out/${split}_e$mu.h5" >/dev/null
    "$ddaq" data overlay "$out/${split}_j0.h5" --pool "$out/train_j0.h5" --mu $mu --seed $((mu + 500)) -o "$out/${split}_j${mu}_v.h5" >/dev/null
    "$ddaq" data overlay "$out/${split}_e0.h5" --pool "$out/train_j0.h5" --mu $mu --seed $((mu + 501)) -o "$out/${split}_e${mu}_v.h5" >/dev/null
  done
done
ls "$out"
