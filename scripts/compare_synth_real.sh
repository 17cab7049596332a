#!/usr/bin/env bash
# Compares `ddaq data synth` at 0PU with the real CMS HGCAL samples, and the
# overlay at mu = 10 and 40 (jet pool), printing `ddaq data stats` side by side.
# Usage: scripts/compare_synth_real.sh [SHARED_DATA_DIR]   (default ../shared/data)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-$root/../shared/data}/hgcal"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export DDAQ_PROGRESS=off
"$ddaq" data import "$data/electron_pt20_eta15-30_0PU.csv" -o "$tmp/real_e.h5" --label 1 >/dev/null
"$ddaq" data import "$data/jet_pt20_eta15-30_0PU.csv" -o "$tmp/real_j.h5" --label 0 >/dev/null
"$ddaq" data synth -o "$tmp/synth_e.h5" --events 17382 --seed 1 --electron-fraction 1 >/dev/null
"$ddaq" data synth -o "$tmp/synth_j.h5" --events 40054 --seed 2 --electron-fraction 0 >/dev/null
for kind in e j; do
  if [ $kind = e ]; then name=electron; else name=jet; fi
  echo "== $name, 0PU: real | synth =="
  "$ddaq" data stats "$tmp/real_$kind.h5" | sed -n 2,4p | sed 's/^/real  /'
  "$ddaq" data stats "$tmp/synth_$kind.h5" | sed -n 2,4p | sed 's/^/synth /'
done
for mu in 10 40; do
  echo "== jet overlaid with the jet pool, mu $mu: real | synth =="
  "$ddaq" data overlay "$tmp/real_j.h5" --pool "$tmp/real_j.h5" --mu $mu --seed 1 -o "$tmp/o.h5" >/dev/null
  "$ddaq" data stats "$tmp/o.h5" | sed -n 2,3p | sed 's/^/real  /'
  "$ddaq" data overlay "$tmp/synth_j.h5" --pool "$tmp/synth_j.h5" --mu $mu --seed 1 -o "$tmp/o.h5" >/dev/null
  "$ddaq" data stats "$tmp/o.h5" | sed -n 2,3p | sed 's/^/synth /'
done
