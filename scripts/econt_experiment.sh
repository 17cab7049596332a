#!/usr/bin/env bash
# The ECON-T experiment (docs/econt.md): a quantized encoder (6-bit weights,
# 3-bit latents, conv 16 filters) at 2, 3 and 4 e-links (16, 24, 36
# latents), trained end to end with the EMD surrogate and, for comparison,
# with weighted MSE, and MSE first then frozen (decoder and classifier
# retrained with the surrogate); exact EMD on held-out real wafers at mu = 40
# and mu = 10 against Best Choice at equal bandwidth. Validation on a split
# of the training wafers picks the epoch kept.
# Needs scripts/make_econt_real.sh first. About 26 minutes on 2 cores (two
# trainings at a time, one thread each).
# Usage: scripts/econt_experiment.sh [OUT_DIR]   (default runs/econt_experiment)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/runs/econt_experiment}"
ddaq="${DDAQ_BUILD_DIR:-$root/build}/core/ddaq"
data="$root/runs/data/econt"
export DDAQ_PROGRESS=off
mkdir -p "$out"

# config LOSS LATENTS -> $out/LOSS_LATENTS.json (main.json with absolute paths)
config() {
  /usr/bin/python3 - "$root/experiments/econt/main.json" "$out/$1_$2.json" "$1" "$2" "$root" <<'PY'
import json, sys
src, dst, loss, latents, root = sys.argv[1:]
c = json.load(open(src))
d = root + "/runs/data/econt/"
c["data"] = {"source": "files", "train": d + "train_mu40.h5", "test": d + "test_mu40.h5"}
# Fixed designs (main.json itself is a budgeted run with learned latent bits).
c["pipeline"].update({"latent": int(latents), "latent_bits": 3, "latent_integer_bits": 2, "conv_filters": 16,
                      "learn_latent_bits": False, "learn_latent_gates": False})
for k in ("budgets", "finetune_fraction"):
    c["training"].pop(k, None)
c["training"].update({"loss": loss, "surrogate": root + "/surrogates/models/emd_surrogate.pt",
                      "validation": d + "val_mu40.h5"})
json.dump(c, open(dst, "w"), indent=2)
PY
}

# result RUN NAME MU: one CSV line from RUN's eval on test_muMU
result() {
  "$ddaq" eval "$1" --data "$data/test_mu$3.h5" > "$1.eval_mu$3.log"
  /usr/bin/python3 - "$1/eval.json" "$2" "$3" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); name, mu = sys.argv[2:]
bc = [b for b in e["best_choice"] if b["elinks"] == e["elinks"]][0]["emd_mean"]
auc = e["auc"] if e["auc"] is not None else float("nan")
print(f"{name},{e['latent_bits']},{e['elinks']},{mu},{e['emd_mean']:.4f},{bc:.4f},{e['emd_mean'] / bc:.3f},{auc:.3f},{e['encoder_ebops']:.0f}")
PY
}

latents=(16 24 36)
for n in "${latents[@]}"; do
  for loss in surrogate weighted_mse; do
    config "$loss" "$n"
    "$ddaq" train "$out/${loss}_$n.json" -o "$out/${loss}_$n" --overwrite > "$out/${loss}_$n.train.log" &
  done
  wait
  # MSE first, then frozen: the weighted-MSE encoder kept fixed while the
  # decoder and classifier retrain with the EMD surrogate.
  "$ddaq" train "$out/surrogate_$n.json" -o "$out/mse_then_frozen_$n" --overwrite --init "$out/weighted_mse_$n" \
    --freeze encoder > "$out/mse_then_frozen_$n.train.log"
done

echo "training,latent_bits,elinks,mu,ae_emd_mean,bc_emd_mean,ratio,auc,encoder_ebops" > "$out/results.csv"
for n in "${latents[@]}"; do
  for name in surrogate weighted_mse mse_then_frozen; do
    for mu in 40 10; do
      result "$out/${name}_$n" "${name}_$n" "$mu" >> "$out/results.csv"
    done
  done
done
column -s, -t "$out/results.csv"
