#!/usr/bin/env bash
# Reproduces the EMD surrogate shipped in surrogates/models/emd_surrogate.pt
# and its evaluation (docs/emd.md). Needs the real CMS HGCAL samples
# (../shared/data) and the Python bindings (build/python). About 5 minutes
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
autoencoder() { for f in "$@"; do printf '%s ' "$f.h5:$f.ae.h5"; done; }  # wafer : its autoencoder output
pileup() { for f in "$@"; do printf '%s ' "$f.h5:${f}_v.h5"; done; }       # wafer : same signal, other pileup
seen=(e0 j0 e10 j10 e40 j40)
# Generated reconstructions (Best Choice, smearing, leaks, blur, other
# wafers, super trigger cells, shifts), autoencoder outputs of the same
# wafers, and the mu 10 and 40 wafers with another pileup draw.
# shellcheck disable=SC2046
"$ddaq" surrogate emd train --data $(printf "train_%s.h5 " "${seen[@]}") --pairs $(autoencoder "${seen[@]/#/train_}") \
  $(pileup train_e10 train_j10 train_e40 train_j40) --max-wafers 15000 --epochs 60 --seed 1 -o "$model" 2>&1 |
  grep -v '^pairs:'
evaluate() {  # TITLE ARGS...
  echo "== $1"
  shift
  "$ddaq" surrogate emd eval "$model" "$@" --max-wafers 10000 --seed 7 2>/dev/null
}
# shellcheck disable=SC2046
evaluate "held-out wafers, pileup levels seen in training (0, 10, 40): generated reconstructions" \
  --data $(printf "test_%s.h5 " "${seen[@]}")
# shellcheck disable=SC2046
evaluate "held-out wafers (0, 10, 40): autoencoder outputs" --pairs $(autoencoder "${seen[@]/#/test_}")
# shellcheck disable=SC2046
evaluate "held-out wafers (10, 40): pileup variations" --pairs $(pileup test_e10 test_j10 test_e40 test_j40)
for mu in 20 80; do
  # shellcheck disable=SC2046
  evaluate "held-out wafers, pileup mu $mu (never trained on): all kinds" --data test_e$mu.h5 test_j$mu.h5 \
    --pairs $(autoencoder test_e$mu test_j$mu) $(pileup test_e$mu test_j$mu)
done
