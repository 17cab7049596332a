#!/bin/bash
# The whole-detector study of docs/detector.md, from the real wafers to the
# plan, each step timed:
#   1. the real wafers (scripts/make_econt_real.sh; skipped when present);
#   2. the hand-made tables' encoders: one autoencoder per e-link count
#      (1-4) trained on the detector's own mix of pileup (class "mix");
#   3. the plan's encoder classes: the same mix over each third of the
#      modules by mu (mix0-33, mix33-67, mix67-100), trained at the e-link
#      counts the plan gives that third with the mix encoders alone (the
#      sparsest at 1-2, the others at 2-3; docs/detector.md);
#   4. `ddaq detector plan experiments/detector/hgcal.json -o PLAN`.
# Usage: bash scripts/detector_study.sh [PLAN]   (default runs/detector;
# PLAN is replaced). Rerunning resumes the training sweeps. On a cluster:
# steps 2 and 3 are sweeps, one job per point (--slurm, docs/cluster.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plan="${1:-$root/runs/detector}"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
export DDAQ_PROGRESS=off
start=$SECONDS
step() {  # step NAME COMMAND...: runs it, prints its time and the total so far
  local t=$SECONDS
  echo "== $1"
  shift
  "$@"
  echo "== done in $(( SECONDS - t )) s (total $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s)"
}
[ -f "$root/runs/data/econt/test_mu10.h5" ] || step "real wafers" bash "$root/scripts/make_econt_real.sh"
step "tables' encoders (the detector's mix, 1-5 e-links)" \
  bash "$root/scripts/detector_encoders.sh" "$root/runs/detector_mix" mix 1,2,3,4,5 60
step "sparsest third (1-2 e-links)" bash "$root/scripts/detector_encoders.sh" "$root/runs/detector_classes" mix0-33 1,2 60
step "middle third (2-3 e-links)" bash "$root/scripts/detector_encoders.sh" "$root/runs/detector_classes" mix33-67 2,3 60
step "densest third (2-3 e-links)" bash "$root/scripts/detector_encoders.sh" "$root/runs/detector_classes" mix67-100 2,3 60
step "plan" "$ddaq" detector plan "$root/experiments/detector/hgcal.json" -o "$plan" --overwrite
