#!/usr/bin/env bash
# The ECON-T experiment (docs/econt.md): the quantized encoder at 2, 3 and 4
# e-links (16 latents x 3, 5, 7 bits), trained end to end with the EMD
# surrogate and, for comparison, with weighted MSE; exact EMD on held-out
# real wafers at mu = 40 and mu = 10 against Best Choice at equal bandwidth.
# Needs scripts/make_econt_real.sh first. About 4 minutes on 2 cores.
# Usage: scripts/econt_experiment.sh [OUT_DIR]   (default runs/econt_experiment)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/runs/econt_experiment}"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
data="$root/runs/data/econt"
export DDAQ_PROGRESS=off
mkdir -p "$out"
echo "loss,latent_bits,elinks,mu,ae_emd_mean,bc_emd_mean,ratio" > "$out/results.csv"
for loss in surrogate weighted_mse; do
  for bits in 3 5 7; do
    run="$out/${loss}_${bits}bit"
    /usr/bin/python3 - "$root/experiments/econt/main.json" "$run.json" "$loss" "$bits" "$root" <<'PY'
import json, sys
src, dst, loss, bits, root = sys.argv[1:]
c = json.load(open(src))
c["data"] = {"source": "files", "train": root + "/runs/data/econt/train_mu40.h5", "test": root + "/runs/data/econt/test_mu40.h5"}
c["pipeline"]["latent_bits"] = int(bits)
c["pipeline"]["latent_integer_bits"] = 2
c["training"]["loss"] = loss
c["training"]["surrogate"] = root + "/surrogates/models/emd_surrogate.pt"
json.dump(c, open(dst, "w"), indent=2)
PY
    "$ddaq" train "$run.json" -o "$run" > "$run.train.log"
    for mu in 40 10; do
      "$ddaq" eval "$run" --data "$data/test_mu$mu.h5" > "$run.eval_mu$mu.log"
      /usr/bin/python3 - "$run/eval.json" "$loss" "$bits" "$mu" >> "$out/results.csv" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); loss, bits, mu = sys.argv[2:]
bc = [b for b in e["best_choice"] if b["elinks"] == e["elinks"]][0]["emd_mean"]
print(f"{loss},{bits},{e['elinks']},{mu},{e['emd_mean']:.4f},{bc:.4f},{e['emd_mean'] / bc:.3f}")
PY
    done
  done
done
column -s, -t "$out/results.csv"

# MSE first, then frozen: the weighted-MSE encoder of each bandwidth kept
# fixed while the decoder and classifier retrain with the EMD surrogate.
echo "loss,latent_bits,elinks,mu,ae_emd_mean,bc_emd_mean,ratio" > "$out/frozen.csv"
for bits in 3 5 7; do
  run="$out/mse_then_frozen_${bits}bit"
  "$ddaq" train "$out/surrogate_${bits}bit.json" -o "$run" --init "$out/weighted_mse_${bits}bit" --freeze encoder > "$run.train.log"
  "$ddaq" eval "$run" --data "$data/test_mu40.h5" > "$run.eval_mu40.log"
  /usr/bin/python3 - "$run/eval.json" "$bits" >> "$out/frozen.csv" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); bits = sys.argv[2]
bc = [b for b in e["best_choice"] if b["elinks"] == e["elinks"]][0]["emd_mean"]
print(f"mse_then_frozen,{bits},{e['elinks']},40,{e['emd_mean']:.4f},{bc:.4f},{e['emd_mean'] / bc:.3f}")
PY
done
column -s, -t "$out/frozen.csv"
