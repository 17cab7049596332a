"""ddaq's exact EMD equals POT's ot.emd2 to 1e-9 relative (domain-facts.md).

Runs the `ddaq` executable ($DDAQ_EXECUTABLE) on pairs written as event files.
Skips (visibly, as ctest "Skipped") when POT or the real data are missing.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import emd_pairs  # noqa: E402

h5py = pytest.importorskip("h5py")
ot = pytest.importorskip("ot")

DDAQ = os.environ.get("DDAQ_EXECUTABLE", "build/core/ddaq")
SHARED = os.environ.get("DDAQ_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
ENV = dict(os.environ, DDAQ_PROGRESS="off")


def ddaq(*args):
    r = subprocess.run([DDAQ, *args], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    return r


def write_events(path, x):
    with h5py.File(path, "w") as f:
        f["calq"] = x.astype(np.float32)


def compare_with_pot(x, y, tmp):
    write_events(os.path.join(tmp, "a.h5"), x)
    write_events(os.path.join(tmp, "b.h5"), y)
    ddaq("emd", os.path.join(tmp, "a.h5"), os.path.join(tmp, "b.h5"), "-o", os.path.join(tmp, "e.h5"))
    with h5py.File(os.path.join(tmp, "e.h5")) as f:
        ours = f["emd"][:]
    # POT on exactly what ddaq read (float32 charges), normalized in float64.
    a = x.astype(np.float32).astype(np.float64)
    b = y.astype(np.float32).astype(np.float64)
    a /= a.sum(1, keepdims=True)
    b /= b.sum(1, keepdims=True)
    m = emd_pairs.ground_metric()
    pot = np.array([ot.emd2(a[i], b[i], m) for i in range(len(a))])
    rel = np.abs(ours - pot) / np.maximum(np.abs(pot), 1e-12)
    worst = int(np.argmax(rel))
    print(f"{len(a)} pairs: max relative difference {rel.max():.3g} (ddaq {ours[worst]!r}, POT {pot[worst]!r})")
    assert rel.max() <= 1e-9


def real_events(tmp, name):
    path = os.path.join(SHARED, "hgcal", name)
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path}")
    out = os.path.join(tmp, name + ".h5")
    ddaq("data", "import", path, "-o", out)
    with h5py.File(out) as f:
        return out, f["calq"][:].astype(np.float64)


def test_synthetic_pairs_dense_and_sparse():
    with tempfile.TemporaryDirectory() as tmp:
        ddaq("data", "synth", "-o", os.path.join(tmp, "s0.h5"), "--events", "2000", "--seed", "1")
        ddaq("data", "synth", "-o", os.path.join(tmp, "s40.h5"), "--events", "2000", "--seed", "2", "--pileup", "40")
        with h5py.File(os.path.join(tmp, "s0.h5")) as f0, h5py.File(os.path.join(tmp, "s40.h5")) as f40:
            x = np.concatenate([f0["calq"][:], f40["calq"][:]]).astype(np.float64)
        compare_with_pot(x, emd_pairs.reconstructions(x, seed=3), tmp)


def test_real_pairs_10000_at_0pu():
    with tempfile.TemporaryDirectory() as tmp:
        _, jets = real_events(tmp, "jet_pt20_eta15-30_0PU.csv")
        _, electrons = real_events(tmp, "electron_pt20_eta15-30_0PU.csv")
        rng = np.random.default_rng(0)
        x = np.concatenate([electrons[rng.choice(len(electrons), 5000, replace=False)],
                            jets[rng.choice(len(jets), 5000, replace=False)]])
        compare_with_pot(x, emd_pairs.reconstructions(x, seed=1), tmp)


def test_real_pairs_10000_with_pileup_mu40():
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = real_events(tmp, "jet_pt20_eta15-30_0PU.csv")
        out = os.path.join(tmp, "pu40.h5")
        ddaq("data", "overlay", path, "--pool", path, "--mu", "40", "--seed", "1", "-o", out)
        with h5py.File(out) as f:
            x = f["calq"][:10000].astype(np.float64)
        compare_with_pot(x, emd_pairs.reconstructions(x, seed=2), tmp)
