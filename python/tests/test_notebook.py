"""python/notebooks/econt_tour.ipynb runs headless (nbconvert) and shows
what it promises: training, the autoencoder beating Best Choice at 2
e-links, a plot, and the export."""
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

pytest.importorskip("nbconvert")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "notebooks", "econt_tour.ipynb")


def test_econt_tour_notebook_executes():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "executed.ipynb")
        r = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
                            "--ExecutePreprocessor.timeout=600", "--output", out, NOTEBOOK],
                           capture_output=True, text=True, cwd=os.path.dirname(NOTEBOOK))
        assert r.returncode == 0, r.stderr[-2000:]
        nb = json.load(open(out))
        text, images, errors = "", 0, []
        for cell in nb["cells"]:
            for o in cell.get("outputs", []):
                if o["output_type"] == "stream":
                    text += "".join(o["text"])
                elif o["output_type"] == "error":
                    errors.append(o["ename"])
                elif "image/png" in o.get("data", {}):
                    images += 1
        assert not errors
        assert images >= 1
        ratio = float(re.search(r"RESULT ratio=([0-9.]+)", text).group(1))
        print(f"autoencoder / Best Choice at 2 e-links: {ratio}")
        assert ratio < 1.0
        assert "encoder.onnx (QONNX" in text and "HLS project" in text
