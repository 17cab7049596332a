"""The study scripts under scripts/ that compute numbers the docs quote,
against inputs made here with a known answer."""
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYER_WEIGHTS = os.path.join(ROOT, "scripts", "layer_weights_from_pu_table.py")
HEADER = ("layer,u,v,motherboard,eta,eta_estimated,mu,group,algorithm,elinks,expected_emd,"
          "elinks_pu,elinks_signal").split(",")


def write_plan(folder, rows, layer_weights=None):
    os.makedirs(folder)
    with open(os.path.join(folder, "report.json"), "w") as f:
        json.dump({"occupancy_model": {"layer_weights": layer_weights or {}}}, f)
    with open(os.path.join(folder, "allocation.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for layer, mu, e in rows:
            w.writerow([layer, 0, 0, 0, 2.0, 0, f"{mu:.4f}", 0, "best_choice", 2, 0.5, e, 2])


def test_layer_weights_from_pu_table_recovers_a_planted_profile():
    # A table whose e-links follow (weight x mu)^0.5, as the fit assumes:
    # the weights come back; a layer always at the floor is placed below
    # the others; a plan made with layer weights is refused.
    truth = {1: 1.0, 3: 2.0, 5: 1.5, 7: 0.8, 9: 0.5}
    rng = np.random.default_rng(7)
    rows = []
    for layer, w in list(truth.items()) + [(11, 0.002)]:
        for mu in np.exp(rng.uniform(np.log(2.0), np.log(60.0), 400)):
            rows.append((layer, mu, max(1, int(round(4.0 * np.sqrt(w * mu))))))
    with tempfile.TemporaryDirectory() as tmp:
        write_plan(os.path.join(tmp, "P"), rows)
        r = subprocess.run([sys.executable, LAYER_WEIGHTS, os.path.join(tmp, "P")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        got = {int(k): v for k, v in json.loads(r.stdout)["layer_weights"].items()}
        for layer, w in truth.items():
            assert abs(got[layer] / w - 1.0) < 0.05, (layer, got[layer], w)
        assert got[11] < got[9]
        assert "layers 11-11 from every module" in r.stderr
        write_plan(os.path.join(tmp, "W"), rows, {"3": 2.0})
        r = subprocess.run([sys.executable, LAYER_WEIGHTS, os.path.join(tmp, "W")], capture_output=True, text=True)
        assert r.returncode != 0 and "layer weights already" in r.stderr and r.stdout == ""
