"""The ddaq Python module: data, EMD, surrogate and cost models from numpy."""
import os
import time
import tempfile

import numpy as np
import pytest

import ddaq

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_synthesize_is_deterministic_and_labelled():
    a, la = ddaq.synthesize(500, seed=3)
    b, lb = ddaq.synthesize(500, seed=3)
    assert a.shape == (500, 48) and a.dtype == np.float32
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert set(np.unique(la)) == {0, 1}
    assert (a.sum(1) > 0).all()


def test_files_round_trip_and_overlay():
    with tempfile.TemporaryDirectory() as tmp:
        ddaq.synth(os.path.join(tmp, "s.h5"), 300, seed=1)
        ddaq.synth(os.path.join(tmp, "pool.h5"), 200, seed=2, electron_fraction=0.0)
        ddaq.overlay(os.path.join(tmp, "s.h5"), os.path.join(tmp, "pool.h5"), os.path.join(tmp, "o.h5"), mu=10, seed=1)
        s = ddaq.read_events(os.path.join(tmp, "s.h5"))
        o = ddaq.read_events(os.path.join(tmp, "o.h5"))
        assert s["calq"].shape == (300, 48)
        assert np.array_equal(s["label"], o["label"])
        assert o["calq"].sum() > s["calq"].sum()
        assert o["attrs"]["creator"] == "ddaq data overlay"
        header = ",".join(f"CALQ_{i}" for i in range(48))
        with open(os.path.join(tmp, "x.csv"), "w") as f:
            f.write(header + "\n" + ",".join(["1"] * 48) + "\n")
        assert ddaq.import_csv([os.path.join(tmp, "x.csv")], os.path.join(tmp, "x.h5"), [1]) == 1


def test_errors_are_ddaq_errors_with_the_cli_message():
    with pytest.raises(ddaq.Error, match="missing.h5: cannot open"):
        ddaq.read_events("missing.h5")
    with pytest.raises(ddaq.Error, match=r"expected an array of shape \[N, 48\]"):
        ddaq.emd(np.zeros((3, 47)), np.zeros((3, 47)))
    with pytest.raises(ddaq.Error, match="exceeds the frame"):
        ddaq.elinks_for_latent(16, 10)
    # Files the Python layer opens, and LibTorch failures: ddaq.Error, one line.
    with pytest.raises(ddaq.Error, match="missing.json: cannot read the configuration"):
        ddaq.Pipeline("missing.json")
    with pytest.raises(ddaq.Error, match="missing.pt") as e:
        ddaq.EmdSurrogate("missing.pt")
    with pytest.raises(ddaq.Error, match="seed -1 is negative"):
        ddaq.synthesize(10, seed=-1)
    with tempfile.TemporaryDirectory() as d:  # the output rules hold for the library too
        ddaq.synth(os.path.join(d, "a.h5"), 20)
        before = open(os.path.join(d, "a.h5"), "rb").read()
        with pytest.raises(ddaq.Error, match="is the input"):
            ddaq.overlay(os.path.join(d, "a.h5"), os.path.join(d, "a.h5"), os.path.join(d, "a.h5"), 1.0)
        assert open(os.path.join(d, "a.h5"), "rb").read() == before
        with pytest.raises(ddaq.Error, match="is a folder"):
            ddaq.synth(d, 5)
    torch = pytest.importorskip("torch")
    p = ddaq.Pipeline({"pipeline": {}, "training": {"loss": "weighted_mse"}})
    with pytest.raises(ddaq.Error) as e:
        p.forward(torch.zeros(3, 47))
    assert "\n" not in str(e.value) and "frame #" not in str(e.value)
    with pytest.raises(ddaq.Error) as e:  # raised inside LibTorch (c10::Error), not by ddaq's checks
        p.forward(torch.zeros(0, 48))
    assert "\n" not in str(e.value) and "Exception raised from" not in str(e.value)
    with pytest.raises(ddaq.Error, match=r"calq: expected a tensor of shape \[N, 48\]"):
        p.predict(torch.zeros(3, 47))


def test_surrogate_from_a_path_predict_on_tensors_and_ctrl_c_in_training(tmp_path):
    torch = pytest.importorskip("torch")
    s = ddaq.EmdSurrogate(os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt"))
    assert s.parameter_count == ddaq.EmdSurrogate.load(os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt")).parameter_count
    x, _ = ddaq.synthesize(64, seed=3)
    p = ddaq.Pipeline({"pipeline": {}, "training": {"loss": "weighted_mse", "batch_size": 32, "epochs": 1000}})
    from_tensor = p.predict(torch.from_numpy(x))
    from_numpy = p.predict(x)
    for k in ("reconstruction", "latent", "score"):
        assert isinstance(from_tensor[k], torch.Tensor)
        assert np.array_equal(from_tensor[k].numpy(), from_numpy[k])
    # SIGINT while the C++ training loop runs (GIL released, no callback given).
    import signal
    import threading
    ddaq.synth(str(tmp_path / "w.h5"), 2000, seed=2)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        p.train(str(tmp_path / "w.h5"))  # 1000 epochs: minutes, unless interrupted
    timer.join()
    assert time.time() - t0 < 30
    assert np.isfinite(p.predict(x)["latent"]).all()  # stopped at a step boundary: consistent


def test_emd_exact_sinkhorn_and_surrogate():
    x, _ = ddaq.synthesize(200, seed=5, pileup=10)
    y = x[::-1].copy()
    exact = ddaq.emd(x, y)
    assert exact.shape == (200,) and np.isfinite(exact).all()
    one = np.zeros((1, 48), np.float32)
    two = np.zeros((1, 48), np.float32)
    one[0, 0] = two[0, 1] = 1
    assert ddaq.emd(one, two)[0] == pytest.approx(2.0)  # neighbours: 2 sensor-cell pitches
    sk = ddaq.sinkhorn_emd(x[:40], y[:40], epsilon=0.1, iterations=2000)
    assert np.abs(sk - exact[:40]).max() < 0.05
    s = ddaq.EmdSurrogate.load(os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt"))
    assert s.parameter_count < 20000
    pred = s.predict(x, y)
    assert np.array_equal(pred, s.predict(y, x))  # symmetric
    assert np.abs((pred - exact) / exact).mean() < 0.1


def test_cost_models():
    assert [ddaq.elinks_for_latent(16, b) for b in (3, 5, 7, 9)] == [2, 3, 4, 5]
    assert ddaq.best_choice_cells(4) == 9
    s = ddaq.system_budget([("all", 1000, 4)])
    assert s["uplinks"] == 572 and s["elinks"] == 4000
    r = ddaq.fpga_resources([(80, 24, 6, 16, 1024), (24, 120, 6, 16, 1024)])
    assert set(r) == {"LUT", "FF", "DSP", "BRAM18K", "latency_cycles"}
    assert 5000 < r["LUT"] < 40000 and r["DSP"] == 0
    e = ddaq.energy([(100, 8, 8, 16)])
    assert e["pj_per_inference"] == pytest.approx(100 * (0.0029948 * 64 + 0.0010417 * 8 + 0.003125 * 16))


def test_pipeline_train_predict_evaluate_export():
    with tempfile.TemporaryDirectory() as tmp:
        ddaq.synth(os.path.join(tmp, "train.h5"), 800, seed=1, pileup=5)
        config = {"pipeline": {"latent": 16, "latent_bits": 3},
                  "training": {"epochs": 1, "batch_size": 64, "loss": "weighted_mse"}}
        p = ddaq.Pipeline(config)
        assert p.elinks == 2
        calls = []
        s = p.train(os.path.join(tmp, "train.h5"), run=os.path.join(tmp, "run"),
                    progress=lambda step, total, loss: calls.append((step, total)), max_steps=5)
        assert s["steps"] == 5 and calls[-1] == (5, 5)
        x = ddaq.read_events(os.path.join(tmp, "train.h5"))["calq"][:20]
        out = p.predict(x)
        assert out["reconstruction"].shape == (20, 48) and out["latent"].shape == (20, 16)
        assert np.allclose(out["reconstruction"].sum(1), 1, atol=1e-4)
        e = p.evaluate(os.path.join(tmp, "train.h5"), events=200)
        assert e["events"] == 200 and len(e["best_choice"]) == 5
        loaded = ddaq.Pipeline.load(os.path.join(tmp, "run"))
        assert np.array_equal(loaded.predict(x)["latent"], out["latent"])
        log = ddaq.export(os.path.join(tmp, "run"), qonnx=os.path.join(tmp, "e.onnx"))
        assert "QONNX" in log and os.path.exists(os.path.join(tmp, "e.onnx"))
        prj = os.path.join(tmp, "prj")
        ddaq.export(os.path.join(tmp, "run"), hls=prj, tb_samples=10)
        with pytest.raises(ddaq.Error, match="not an empty folder"):
            ddaq.export(os.path.join(tmp, "run"), hls=prj, tb_samples=10)
        assert "HLS project" in ddaq.export(os.path.join(tmp, "run"), hls=prj, tb_samples=10, replace=True)
        emu = os.path.join(tmp, "emu")
        assert "emulator library" in ddaq.export(os.path.join(tmp, "run"), emulator=emu, tb_samples=10)
        assert os.path.exists(os.path.join(emu, "include", "encoder_emulator.h"))
        with pytest.raises(ddaq.Error, match="emulates the encoder"):
            ddaq.export(os.path.join(tmp, "run"), emulator=os.path.join(tmp, "emu2"), part="classifier")
        assert not os.path.exists(os.path.join(tmp, "emu2"))
        with pytest.raises(ddaq.Error, match="pipeline.layout"):
            ddaq.Pipeline({"pipeline": {"layout": "9x9"}, "training": {"loss": "weighted_mse"}})


def test_torch_tensors_cross_with_autograd():
    torch = pytest.importorskip("torch")
    x, _ = ddaq.synthesize(30, seed=2, pileup=5)
    t = torch.from_numpy(x)
    e = ddaq.emd(t, t.flip(0))
    assert isinstance(e, torch.Tensor) and torch.equal(e, torch.from_numpy(ddaq.emd(x, x[::-1])))
    s = ddaq.EmdSurrogate.load(os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt"))
    a = t.clone().requires_grad_(True)
    s.forward(a, t.flip(0)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    p = ddaq.Pipeline({"pipeline": {}, "training": {"loss": "weighted_mse"}})
    out = p.forward(t, training=True)
    assert out["reconstruction"].shape == (30, 48) and out["reconstruction"].requires_grad


def test_graph_runs_any_section_and_python_stages_train_with_the_pipeline(tmp_path):
    import json
    import torch

    class Gain(torch.nn.Module):
        def __init__(self, options):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.full((48,), float(options.get("initial", 1.0))))

        def forward(self, charges):
            return charges * self.gain

    ddaq.register_stage("test_py_gain", Gain, reads=["charges"], writes=["calibrated"], options=["initial"])
    assert "test_py_gain" in ddaq.stage_types()
    with pytest.raises(ddaq.Error, match="registered twice"):
        ddaq.register_stage("test_py_gain", Gain, reads=["charges"], writes=["calibrated"])
    config = json.load(open(os.path.join(ROOT, "experiments", "graphs", "dense_encoder.json")))
    config["training"].update(loss="weighted_mse", epochs=1)
    del config["training"]["surrogate"]
    stages = config["graph"]["stages"]
    stages.insert(0, {"type": "test_py_gain", "name": "gain", "reads": {"charges": "calq"},
                      "writes": {"calibrated": "calibrated"}, "initial": 2.0})
    stages[1]["reads"]["charges"] = "calibrated"
    # ddaq.Graph: every tensor by name, with autograd through the Python stage.
    g = ddaq.Graph(config)
    assert g.stages[0] == ("gain", "test_py_gain") and g.input == "calq"
    x = torch.rand(5, 48) * 10
    out = g.forward(x)
    assert torch.equal(out["calibrated"], 2.0 * x)
    assert out["latent"].shape == (5, 16)
    out["calibrated"].sum().backward()
    assert torch.allclose(g.named_parameters()["gain.gain"].grad, x.sum(0))
    # The C++ trainer trains it with the rest; the run saves and loads in this process.
    ddaq.synth(str(tmp_path / "train.h5"), 512, seed=3, pileup=5)
    p = ddaq.Pipeline(config)
    p.train(str(tmp_path / "train.h5"), run=str(tmp_path / "run"), max_steps=8)
    assert not torch.equal(p.named_parameters()["gain.gain"], torch.full((48,), 2.0))
    q = ddaq.Pipeline.load(str(tmp_path / "run"))
    w, _ = ddaq.synthesize(50, pileup=5, seed=4)
    assert np.array_equal(p.predict(w)["reconstruction"], q.predict(w)["reconstruction"])
    # Not exportable: a Python stage has no integer description, so no part.
    with pytest.raises(ddaq.Error, match="gain"):
        ddaq.export(str(tmp_path / "run"), qonnx=str(tmp_path / "g.onnx"), part="gain")
    # A Python stage that returns a role it does not write, and a graph without a graph section.
    class Wrong(torch.nn.Module):
        def forward(self, charges):
            return {"other": charges}

    ddaq.register_stage("test_py_wrong", lambda options: Wrong(), reads=["charges"], writes=["a", "b"])
    bad = {"graph": {"stages": [{"type": "test_py_wrong", "name": "w", "reads": {"charges": "calq"},
                                 "writes": {"a": "a", "b": "b"}}]}}
    with pytest.raises(ddaq.Error, match=r"stage 'w' \(test_py_wrong\).*returned no 'a'"):
        ddaq.Graph(bad)
    with pytest.raises(ddaq.Error, match="no 'graph' section"):
        ddaq.Graph({"pipeline": {}})


def test_graph_configs_build_pipelines_and_their_errors_are_ddaq_errors(tmp_path):
    import json
    config = json.load(open(os.path.join(ROOT, "experiments", "graphs", "dense_encoder.json")))
    config["training"].update(loss="weighted_mse", epochs=1)
    del config["training"]["surrogate"]
    p = ddaq.Pipeline(config)
    x, _ = ddaq.synthesize(200, pileup=5, seed=3)
    out = p.predict(x)
    # 16 latents from the graph's encoder (dense 32 -> dense 16), a unit-sum reconstruction.
    assert out["latent"].shape == (200, 16)
    assert np.allclose(out["reconstruction"].sum(axis=1), 1.0, atol=1e-5)
    bad = json.loads(json.dumps(config))
    bad["graph"]["stages"][1]["reads"]["input"] = "normalised"
    with pytest.raises(ddaq.Error, match=r"graph.stages\[1\].reads.input: tensor 'normalised' is not written"):
        ddaq.Pipeline(bad)


def test_any_detector_trains_predicts_and_evaluates_at_its_own_width(tmp_path):
    """experiments/graphs/pixel16.json (256 pixels, its own geometry file) through the Python module: event files of
    256 columns read back as such, trained, predicted and evaluated at that width (no HGCAL baselines); an array
    of HGCAL's 48 cells is refused naming the expected shape."""
    import numpy as np
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    n = 512
    calq = np.zeros((n, 16, 16), np.float32)
    labels = rng.integers(0, 2, n).astype(np.int32)
    for i in range(n):  # one or two 2x2 blobs
        for _ in range(1 + labels[i]):
            r, c = rng.integers(0, 15, 2)
            calq[i, r:r + 2, c:c + 2] += rng.integers(5, 50)
    path = str(tmp_path / "pixels.h5")
    with h5py.File(path, "w") as f:
        f["calq"] = calq.reshape(n, 256)
        f["label"] = labels
    events = ddaq.read_events(path)
    assert events["calq"].shape == (n, 256) and np.array_equal(events["calq"], calq.reshape(n, 256))
    p = ddaq.Pipeline(os.path.join(ROOT, "experiments", "graphs", "pixel16.json"))
    p.train(path, max_steps=4)
    out = p.predict(calq[:10].reshape(10, 256))
    assert out["reconstruction"].shape == (10, 256) and out["score"].shape == (10,)
    assert np.allclose(out["reconstruction"].sum(1), 1.0, atol=1e-5)
    with pytest.raises(ddaq.Error, match=r"expected an array of shape \[N, 256\]"):
        p.predict(np.zeros((3, 48), np.float32))
    report = p.evaluate(path)
    assert report["events"] == n and report["best_choice"] == [] and report["emd_mean"] > 0
    assert set(report["aucs"]) == {"two_clusters"}
