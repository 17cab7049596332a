#!/usr/bin/env bash
# The trigger_first study (docs/graph.md): electron-vs-jet AUC of a classifier
# on what the ECON-T frame sends at 2 e-links (16 x 3-bit latents + the 9-bit
# module sum), against one on full-precision inputs and one on Best Choice at
# the same 2 e-links, trained together in one graph
# (experiments/graphs/trigger_first.json), at 0PU, mu = 10 and mu = 40.
#   robust: the shipped config (pileup mu uniform in [1, 40]) evaluated on
#           each test file;
#   matched: one training per condition (no pileup, mu = 10, mu = 40 overlaid
#           per wafer from the training jets), evaluated on its own test file.
# Usage: scripts/trigger_study.sh [OUT_DIR] [SEED]   (default runs/trigger_study, 1)
# Needs scripts/make_econt_real.sh's files; about 5 minutes on 1 core.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/runs/trigger_study}"
seed="${2:-1}"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
data="$root/runs/data/econt"
export DDAQ_PROGRESS=off
mkdir -p "$out"
for f in fit_0pu pool test_0pu test_mu10 test_mu40; do
  [ -f "$data/$f.h5" ] || { echo "trigger_study: $data/$f.h5 missing (run scripts/make_econt_real.sh)" >&2; exit 1; }
done
# A config per condition: the shipped one with its pileup replaced (absolute paths).
variant() {  # NAME MU_MIN MU (MU 0: no pileup)
  /usr/bin/python3 - "$root/experiments/graphs/trigger_first.json" "$out/$1.json" "$2" "$3" <<'PY'
import json, os, sys
src, dst, mu_min, mu = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
c = json.load(open(src))
here = os.path.dirname(os.path.abspath(src))
t = c["training"]
for k in ("surrogate", "pileup_pool"):
    t[k] = os.path.normpath(os.path.join(here, t[k]))
c["data"] = {k: (os.path.normpath(os.path.join(here, v)) if k in ("train", "test") else v) for k, v in c["data"].items()}
if mu == 0:
    for k in ("pileup_pool", "pileup_mu", "pileup_mu_min"):
        t.pop(k, None)
else:
    t["pileup_mu"], t["pileup_mu_min"] = mu, mu_min
json.dump(c, open(dst, "w"), indent=1)
PY
}
variant robust 1 40
variant matched_0pu 0 0
variant matched_mu10 0 10
variant matched_mu40 0 40
for name in robust matched_0pu matched_mu10 matched_mu40; do
  "$ddaq" train "$out/$name.json" -o "$out/$name" --seed "$seed" --overwrite > "$out/$name.train.log"
done
aucs() {  # RUN TEST -> "trigger full best_choice emd"
  "$ddaq" eval "$1" --data "$data/$2.h5" > "$1.eval_$2.txt"
  cp "$1/eval.json" "$1.eval_$2.json"
  /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); a=r["aucs"]; print("%.4f %.4f %.4f %.4f" % (a["trigger"], a["trigger_full"], a["trigger_best_choice"], r["emd_mean"]))' "$1/eval.json"
}
{
  echo "# AUC (electron vs jet) at 2 e-links; seed $seed"
  echo "# training  test  transmitted  full_precision  best_choice  exact_EMD_of_the_autoencoder"
  for t in 0pu mu10 mu40; do echo "robust    $t $(aucs "$out/robust" "test_$t")"; done
  for t in 0pu mu10 mu40; do echo "matched   $t $(aucs "$out/matched_$t" "test_$t")"; done
} | tee "$out/aucs.txt"
