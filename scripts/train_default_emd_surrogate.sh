#!/usr/bin/env bash
# Reproduces the EMD surrogate shipped in surrogates/models/emd_surrogate.pt
# and its evaluation (docs/emd.md). Needs the real CMS HGCAL samples
# (../shared/data). About 2 minutes on 2 cores.
# Usage: scripts/train_default_emd_surrogate.sh [OUT_MODEL] [SHARED_DATA_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$root/surrogates/models/emd_surrogate.pt}"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
bash "$root/scripts/make_emd_datasets.sh" "$work" "${2:-$root/../shared/data}" >/dev/null
cd "$work"
"$ddaq" surrogate emd train --data train_e0.h5 train_j0.h5 train_e10.h5 train_j10.h5 train_e40.h5 train_j40.h5 \
  --max-wafers 15000 --epochs 60 --seed 1 -o "$model"
echo "== held-out wafers, pileup levels seen in training (0, 10, 40)"
"$ddaq" surrogate emd eval "$model" --data test_e0.h5 test_j0.h5 test_e10.h5 test_j10.h5 test_e40.h5 test_j40.h5 \
  --max-wafers 10000 --seed 7
for mu in 20 80; do
  echo "== held-out wafers, pileup mu $mu (never trained on)"
  "$ddaq" surrogate emd eval "$model" --data test_e$mu.h5 test_j$mu.h5 --max-wafers 10000 --seed 7
done
