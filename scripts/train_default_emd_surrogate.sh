#!/usr/bin/env bash
# Reproduces the EMD surrogate shipped in surrogates/models/emd_surrogate.pt
# and its evaluation (docs/emd.md). Needs the real CMS HGCAL samples
# (../shared/data) and the Python bindings (build/python). About 4 minutes
# on 2 cores.
# Usage: scripts/train_default_emd_surrogate.sh [OUT_MODEL] [SHARED_DATA_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$root/surrogates/models/emd_surrogate.pt}"
case "$model" in /*) ;; *) model="$PWD/$model" ;; esac
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
bash "$root/scripts/make_emd_datasets.sh" "$work" "${2:-$root/../shared/data}" >/dev/null
# Autoencoder outputs as they train (9 snapshots, losses without the surrogate).
/usr/bin/python3 "$root/scripts/make_autoencoder_pairs.py" "$work" >/dev/null
cd "$work"
pairs() { for f in "$@"; do printf '%s ' "$f.h5:$f.ae.h5"; done; }
train=(train_e0 train_j0 train_e10 train_j10 train_e40 train_j40)
# Generated reconstructions (Best Choice, smearing, leaks, blur, other
# wafers, super trigger cells) and autoencoder outputs of the same wafers.
# shellcheck disable=SC2046
"$ddaq" surrogate emd train --data "${train[@]/%/.h5}" --pairs $(pairs "${train[@]}") \
  --max-wafers 15000 --epochs 60 --seed 1 -o "$model"
echo "== held-out wafers, pileup levels seen in training (0, 10, 40)"
test=(test_e0 test_j0 test_e10 test_j10 test_e40 test_j40)
# shellcheck disable=SC2046
"$ddaq" surrogate emd eval "$model" --data "${test[@]/%/.h5}" --pairs $(pairs "${test[@]}") --max-wafers 10000 --seed 7
for mu in 20 80; do
  echo "== held-out wafers, pileup mu $mu (never trained on)"
  # shellcheck disable=SC2046
  "$ddaq" surrogate emd eval "$model" --data test_e$mu.h5 test_j$mu.h5 --pairs $(pairs test_e$mu test_j$mu) \
    --max-wafers 10000 --seed 7
done
