#!/bin/bash
# Autoencoders for the detector plan (docs/detector.md): one `ddaq sweep` of
# e-link budgets per pileup class, each trained on the real wafers with that
# class's jet-pool overlay, so that sparse (low-eta, back) and dense modules
# each get encoders matched to what they see. The runs are then listed in a
# detector config's "autoencoders" (experiments/detector/hgcal.json).
# Usage: bash scripts/detector_encoders.sh [OUT] [MU_LIST] [ELINKS] [EPOCHS]
#   defaults: runs/detector_encoders 10 1,2,3,4 60 (mu 40 comes from the
#   main sweep; mu 3 encoders never beat Best Choice at 2+ e-links there)
#   A class "mix" is the detector's own mix (`ddaq detector overlay` of
#   $DETECTOR_CONFIG, default experiments/detector/hgcal.json): each wafer
#   gets a random trigger module's pileup, the stand-in of the 200-pileup
#   sample the published ECON-T autoencoders were trained on. A class
#   "mixLO-HI" (LO, HI in percent, e.g. mix0-33) is the same mix over only
#   the modules between those quantiles of mu (`--mu-quantiles`): encoders
#   for one band of the detector, the sparsest third for mix0-33.
# Needs runs/data/econt (scripts/make_econt_real.sh). Rerunning resumes.
# On a cluster: add --slurm to the sweep line (one job per point).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/runs/detector_encoders}"
mus="${2:-10}"
elinks="${3:-1,2,3,4}"
epochs="${4:-60}"
data="$root/runs/data/econt"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
export DDAQ_PROGRESS=off
mkdir -p "$out/data"
out="$(cd "$out" && pwd)"  # the generated configs name their data by absolute path
for mu in $mus; do
  seed=100
  for part in fit val test; do  # a seed per part and class
    seed=$(( seed + 1 ))
    f="$out/data/${part}_mu$mu.h5"
    [ -f "$f" ] && continue
    if [ "$mu" = mix ]; then
      "$ddaq" detector overlay "${DETECTOR_CONFIG:-$root/experiments/detector/hgcal.json}" "$data/${part}_0pu.h5" \
        --seed "$(( seed * 1000 + 999 ))" -o "$f"
    elif [[ "$mu" =~ ^mix([0-9]+)-([0-9]+)$ ]]; then
      lo="${BASH_REMATCH[1]}" hi="${BASH_REMATCH[2]}"
      "$ddaq" detector overlay "${DETECTOR_CONFIG:-$root/experiments/detector/hgcal.json}" "$data/${part}_0pu.h5" \
        --mu-quantiles "$(( 10#$lo ))e-2:$(( 10#$hi ))e-2" --seed "$(( seed * 1000000 + 10#$lo * 1000 + 10#$hi ))" -o "$f"
    else
      "$ddaq" data overlay "$data/${part}_0pu.h5" --pool "$data/pool.h5" --mu "$mu" \
        --seed "$(( seed * 1000 + ${mu%.*} ))" -o "$f"
    fi
  done
  /usr/bin/python3 - "$root/experiments/econt/main.json" "$out/mu$mu.json" "$out/data" "$mu" "$epochs" "$root" <<'PY'
import json, sys
src, dst, data, mu, epochs, root = sys.argv[1:]
c = json.load(open(src))
c["name"] = f"econt-mu{mu}"
if mu == "mix":
    what = "the detector mix (ddaq detector overlay)"
elif mu.startswith("mix"):
    what = f"the detector mix of the modules between the {mu[3:].replace('-', '% and ')}% quantiles of mu"
else:
    what = f"the mu = {mu} overlay"
c["description"] = f"main.json trained on {what} (scripts/detector_encoders.sh)"
c["data"] = {"source": "files", "train": f"{data}/fit_mu{mu}.h5", "test": f"{data}/test_mu{mu}.h5"}
c["training"].update(epochs=int(epochs), validation=f"{data}/val_mu{mu}.h5",
                     surrogate=f"{root}/surrogates/models/emd_surrogate.pt")
json.dump(c, open(dst, "w"), indent=2)
PY
  resume=()
  [ -f "$out/mu$mu/sweep.json" ] && resume=(--resume)
  "$ddaq" sweep "$out/mu$mu.json" --budget "elinks=$elinks" -o "$out/mu$mu" --jobs "${DDAQ_JOBS:-2}" "${resume[@]}"
done
