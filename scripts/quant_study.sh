#!/usr/bin/env bash
# Reproduces the quantization study of docs/quantization.md: the ECON-T
# encoder (8x8 -> conv 8 3x3 s2 -> dense 16) with a float decoder, trained
# with the shipped EMD surrogate as loss on real wafers with mu = 40 pileup,
# in float, fixed 6-bit and learned-bit variants; exact EMD on held-out wafers.
# Usage: scripts/quant_study.sh [LAMBDA] [SHARED_DATA_DIR]   (about 1 minute per lambda)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DDAQ_BUILD_DIR:-$root/build}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
bash "$root/scripts/make_emd_datasets.sh" "$work" "${2:-$root/../shared/data}" >/dev/null
cd "$root"
"$build/quant/econt_quant_study" "$work/train_e40.h5" "$work/train_j40.h5" \
  --test "$work/test_e40.h5" "$work/test_j40.h5" --epochs 10 --max-train 20000 --lambda "${1:-2e-6}"
