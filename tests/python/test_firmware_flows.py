"""Firmware hand-off checked with the real tools of the field (../shared/tools/fwkit:
hls4ml's documented QONNX flow, qonnx's executor, the Xilinx ap_types headers), on
the files exactly as `ddaq export` writes them, plus the emulator library against
`ddaq predict`. Skips visibly when the kit or the real data are absent."""
import ctypes
import fcntl
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

EXE = os.path.abspath(os.environ.get("DDAQ_EXECUTABLE", "build/core/ddaq"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("DDAQ_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
FWKIT = os.path.join(ROOT, "..", "shared", "tools", "fwkit")
CONFIG = os.path.join(ROOT, "experiments", "econt", "quick.json")
WORK = os.environ.get("DDAQ_FW_WORK", os.path.join(tempfile.gettempdir(), "ddaq-fw-work"))


def ddaq(*args, check=True):
    r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, DDAQ_PROGRESS="off"))
    if check and r.returncode != 0:
        raise AssertionError(f"ddaq {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def shared_run():
    """One trained quick run shared by the tests of this file (ctest runs them as
    separate processes, maybe two at a time): made once per ddaq build, under a lock."""
    os.makedirs(WORK, exist_ok=True)
    st = os.stat(EXE)
    stamp = f"{st.st_size} {st.st_mtime_ns}\n"
    run = os.path.join(WORK, "run")
    with open(os.path.join(WORK, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = os.path.join(WORK, "stamp")
        if not (os.path.exists(stamp_file) and open(stamp_file).read() == stamp):
            shutil.rmtree(run, ignore_errors=True)
            ddaq("run", CONFIG, "-o", run)
            with open(stamp_file, "w") as f:
                f.write(stamp)
    return run


def fwkit_or_skip():
    if not os.path.exists(os.path.join(FWKIT, "hls4ml_flow.py")):
        pytest.skip(f"fwkit not found: {FWKIT}")


def tb_arrays(project):
    x = np.loadtxt(os.path.join(project, "tb_data", "tb_input_features.dat"), ndmin=2)
    y = np.loadtxt(os.path.join(project, "tb_data", "tb_output_predictions.dat"), ndmin=2)
    return x, y


def export(run, out, *extra):
    return ddaq("export", run, *extra).stdout


def tool(cmd, tmp):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ, TMPDIR=str(tmp)))
    return r.returncode, r.stdout + r.stderr


def test_hls4ml_flow_and_qonnx_exec_accept_the_files_unedited(tmp_path):
    fwkit_or_skip()
    run = shared_run()
    log = export(run, tmp_path, "--part", "all", "--qonnx", str(tmp_path / "m.onnx"), "--hls", str(tmp_path / "prj"),
                 "--tb-samples", "300")
    assert "does not fit hls4ml" not in log, log
    for part in ("encoder", "classifier"):
        check_qonnx_and_hls4ml(tmp_path, part, ("parallel", "stream"))


def check_qonnx_and_hls4ml(tmp_path, part, ios):
    """tmp_path/m.PART.onnx through qonnx's executor and hls4ml's QONNX flow (each io) on the testbench data of
    tmp_path/prj/PART: both bit-exact with ddaq's expected outputs."""
    x, y = tb_arrays(tmp_path / "prj" / part)
    np.save(tmp_path / f"{part}_x.npy", x)
    np.save(tmp_path / f"{part}_y.npy", y)
    model = str(tmp_path / f"m.{part}.onnx")
    args = ["--inputs", str(tmp_path / f"{part}_x.npy"), "--expected", str(tmp_path / f"{part}_y.npy")]
    rc, out = tool([os.path.join(FWKIT, "qonnx_exec.py"), model, *args], tmp_path)
    assert rc == 0 and "RESULT: PASS" in out, out
    for io in ios:
        rc, out = tool([os.path.join(FWKIT, "hls4ml_flow.py"), model, *args, "--io", io,
                        "--out", str(tmp_path / f"hls4ml_{part}_{io}")], tmp_path)
        assert rc == 0 and "RESULT: PASS" in out and " 0 mismatch" in out.replace("mismatching", "mismatch"), out


# Lines in which a reuse factor may change a project: pragmas and comments that g++ ignores.
REUSE_LINES = re.compile(r"^(  #pragma HLS (PIPELINE II|ALLOCATION operation instances=mul limit)=\d+"
                         r"|#define REUSE_FACTOR \d+|Integer-exact HLS C\+\+ of a quantized model .*)$")


def changed_lines(a, b):
    """The lines that differ between two project trees (which must hold the same files)."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    changed = []
    for rel in files_a:
        la, lb = (a / rel).read_text().splitlines(), (b / rel).read_text().splitlines()
        assert len(la) == len(lb), rel
        changed += [(str(rel), x, y) for x, y in zip(la, lb) if x != y]
    return changed


@pytest.mark.parametrize("io,reuse", [("parallel", 4), ("stream", 8)])
def test_xilinx_headers_and_ddaq_headers_pass_the_same_testbench(tmp_path, io, reuse):
    """A reuse factor changes only pragmas (II, multiplier limit), so the C simulation of the reuse-R project
    stands for reuse 1 too (checked line by line); it runs under the real Xilinx headers and ddaq's own."""
    fwkit_or_skip()
    run = shared_run()
    for r in (1, reuse):
        export(run, tmp_path, "--part", "all", "--hls", str(tmp_path / f"prj{r}"), "--io", io, "--reuse-factor",
               str(r), "--tb-samples", "200")
    changed = changed_lines(tmp_path / "prj1", tmp_path / f"prj{reuse}")
    assert changed and all(REUSE_LINES.match(x) and REUSE_LINES.match(y) for _, x, y in changed), changed
    assert any(y == f"#define REUSE_FACTOR {reuse}" for _, _, y in changed), changed
    if io == "parallel":
        assert any(y == f"  #pragma HLS PIPELINE II={reuse}" for _, _, y in changed), changed
    for part in ("encoder", "classifier"):
        prj = tmp_path / f"prj{reuse}" / part
        rc, out = tool([os.path.join(FWKIT, "xilinx_csim.sh"), str(prj)], tmp_path)
        assert rc == 0 and ", 0 mismatching outputs" in out, out
        # ddaq's own ap_fixed subset on the same expected outputs: identical results.
        own = build_and_run_testbench(prj, part)
        assert own.returncode == 0 and ", 0 mismatching outputs" in own.stdout, own.stdout


def build_and_run_testbench(prj, name):
    subprocess.run(["g++", "-std=c++17", "-O1", "-Ifirmware/ap_types", "-o", "tb", f"{name}_test.cpp",
                    f"firmware/{name}.cpp"], cwd=prj, check=True, capture_output=True, timeout=600)
    return subprocess.run(["./tb"], cwd=prj, capture_output=True, text=True, timeout=300)


def narrow_accumulator(defines, layer):
    """The typedef of layerK_accum_t one integer bit narrower (same fractional bits)."""
    text = open(defines).read()
    pattern = re.compile(r"typedef ap_fixed<(\d+),(-?\d+)([^>]*)> " + layer + "_accum_t;")
    m = pattern.search(text)
    assert m, f"{layer}_accum_t not in {defines}"
    w, i = int(m.group(1)), int(m.group(2))
    text = pattern.sub(f"typedef ap_fixed<{w - 1},{i - 1}{m.group(3)}> {layer}_accum_t;", text)
    open(defines, "w").write(text)


@pytest.mark.parametrize("part", ["encoder", "classifier"])
def test_testbench_inputs_catch_an_accumulator_one_bit_too_narrow(tmp_path, part):
    run = shared_run()
    export(run, tmp_path, "--part", part, "--hls", str(tmp_path / "prj"), "--tb-samples", "50")
    prj = tmp_path / "prj"
    good = build_and_run_testbench(prj, part)
    assert good.returncode == 0 and ", 0 mismatching outputs" in good.stdout, good.stdout
    narrow_accumulator(prj / "firmware" / "defines.h", "layer1")
    bad = build_and_run_testbench(prj, part)
    m = re.search(r"(\d+) mismatching outputs", bad.stdout)
    assert bad.returncode != 0 and m and int(m.group(1)) > 0, bad.stdout


def test_testbench_data_are_real_wafers_float32_exact_and_distinct(tmp_path):
    run = shared_run()
    log = export(run, tmp_path, "--part", "all", "--hls", str(tmp_path / "prj"), "--tb-samples", "500")
    for part in ("encoder", "classifier"):
        x, y = tb_arrays(tmp_path / "prj" / part)
        assert np.array_equal(x.astype(np.float32).astype(np.float64), x)
        assert np.array_equal(y.astype(np.float32).astype(np.float64), y)
        distinct = len({tuple(r) for r in y})
        m = re.search(r"wrote \S+/prj/" + part + r" .*\n\s+testbench: (\d+) samples \((\d+) .*?(\d+) distinct", log)
        assert m, log
        assert int(m.group(1)) == len(x) and int(m.group(3)) == distinct, log
        assert distinct > 50, f"{part}: only {distinct} distinct expected rows"
    # Encoder inputs come through the front end: every real wafer's inputs are
    # kept / 2^floor(log2 sum) of one test-split wafer, so they lie in [0, 2).
    x, _ = tb_arrays(tmp_path / "prj" / "encoder")
    assert x[:500].max() < 2.0 and x[:500].min() >= 0.0


def latent_type_from_qonnx(path):
    """(count, bits, integer bits, signed) of the model output, from the QONNX file alone."""
    m = onnx.load(path)
    out = m.graph.output[0]
    node = next(n for n in m.graph.node if "output" in n.output)
    assert node.op_type == "Quant", node.op_type
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    scale, bits = float(inits[node.input[1]].reshape(-1)[0]), int(inits[node.input[3]].reshape(-1)[0])
    signed = next(a.i for a in node.attribute if a.name == "signed")
    count = int(np.prod([d.dim_value for d in out.type.tensor_type.shape.dim[1:]]))
    frac = -int(round(np.log2(scale)))
    return count, bits, bits - frac, signed


def econt_elinks(payload_bits):
    """ECON-T autoencoder frame: the first e-link carries 18 payload bits (32 minus
    a 5-bit header and the 9-bit module sum), each further one 32."""
    e = 1
    while 18 + 32 * (e - 1) < payload_bits:
        e += 1
    return e


def test_exact_sizes_recomputed_from_the_qonnx_file_equal_predict(tmp_path):
    run = shared_run()
    export(run, tmp_path, "--qonnx", str(tmp_path / "enc.onnx"))
    count, bits, integer, signed = latent_type_from_qonnx(str(tmp_path / "enc.onnx"))
    ddaq("predict", run, "--data", os.path.join(run, "test.h5"), "-o", str(tmp_path / "p.h5"))
    with h5py.File(tmp_path / "p.h5", "r") as f:
        latent = f["latent"][:]
        elinks, bits_per_bx = int(f.attrs["elinks"]), int(f.attrs["bits_per_bx"])
    assert latent.shape[1] == count
    assert econt_elinks(count * bits) == elinks and bits_per_bx == 32 * elinks
    # Every transmitted value is on the QONNX latent type's grid and in its range.
    raw = latent.astype(np.float64) * 2.0 ** (bits - integer)
    assert np.array_equal(raw, np.round(raw)) and raw.min() >= 0 and raw.max() <= 2 ** bits - 1 and signed == 0
    # The metadata names the run, not this machine's path to it.
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "enc.onnx")).metadata_props}
    assert meta["run"] == "run" and WORK not in meta["run"]


def latent_widths_from_qonnx(path):
    """Per-latent widths of a per-latent-bits encoder, from the QONNX file alone:
    the latent's Quant (shared integer bits I = bitwidth - fractional bits) and
    after it the per-latent truncation (scale 2^-f per latent): I + f each."""
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    last = next(n for n in m.graph.node if "output" in n.output)
    first = next(n for n in m.graph.node if last.input[0] in n.output)
    assert last.op_type == "Quant" and first.op_type == "Quant", (first.op_type, last.op_type)
    frac = -int(round(np.log2(float(inits[first.input[1]].reshape(-1)[0]))))
    integer = int(inits[first.input[3]].reshape(-1)[0]) - frac
    f = -np.round(np.log2(inits[last.input[1]].reshape(-1))).astype(int)
    return integer, f, np.maximum(0, integer + f)


def test_per_latent_widths_export_exactly_and_fit_the_budget(tmp_path):
    """A per-latent-bits run (learned gates, learned widths, 2 e-links): the
    widths read from the QONNX file fit the frame, equal predict's, every
    transmitted value lies on its own latent's grid, and the real tools
    reproduce both exported parts bit for bit."""
    fwkit_or_skip()
    run = str(tmp_path / "run")
    ddaq("train", os.path.join(ROOT, "experiments", "econt", "codesign_per_latent.json"), "-o", run,
         "--max-steps", "40", "--budget", "elinks=2")
    export(run, tmp_path, "--part", "all", "--qonnx", str(tmp_path / "m.onnx"), "--hls", str(tmp_path / "prj"),
           "--tb-samples", "300")
    integer, f, widths = latent_widths_from_qonnx(str(tmp_path / "m.encoder.onnx"))
    assert len(set(widths.tolist())) > 1, widths  # not one width for all
    assert econt_elinks(int(widths.sum())) <= 2
    ddaq("data", "slice", os.path.join(run, "train.h5"), "--start", "0", "--stop", "2000", "-o", str(tmp_path / "x.h5"))
    ddaq("predict", run, "--data", str(tmp_path / "x.h5"), "-o", str(tmp_path / "p.h5"))
    with h5py.File(tmp_path / "p.h5", "r") as h:
        latent = h["latent"][:]
        assert int(h.attrs["elinks"]) == econt_elinks(int(widths.sum()))
    assert latent.shape[1] == len(widths)
    raw = latent.astype(np.float64) * 2.0 ** f  # element k on its own grid: multiples of 2^-f_k
    assert np.array_equal(raw, np.floor(raw)) and raw.min() >= 0
    assert (raw <= 2.0 ** widths - 1).all()
    for part in ("encoder", "classifier"):
        x, y = tb_arrays(tmp_path / "prj" / part)
        np.save(tmp_path / f"{part}_x.npy", x)
        np.save(tmp_path / f"{part}_y.npy", y)
        args = [str(tmp_path / f"m.{part}.onnx"), "--inputs", str(tmp_path / f"{part}_x.npy"), "--expected",
                str(tmp_path / f"{part}_y.npy")]
        for t in ("qonnx_exec.py", "hls4ml_flow.py"):
            rc, out = tool([os.path.join(FWKIT, t), *args], tmp_path)
            assert rc == 0 and "RESULT: PASS" in out, out
        rc, out = tool([os.path.join(FWKIT, "xilinx_csim.sh"), str(tmp_path / "prj" / part)], tmp_path)
        assert rc == 0 and ", 0 mismatching outputs" in out, out


def build_emulator(tmp_path, run):
    emu = tmp_path / "emu"
    log = export(run, tmp_path, "--emulator", str(emu), "--name", "econt")
    assert "emulator library" in log
    subprocess.run(["cmake", "-S", str(emu), "-B", str(emu / "build"), "-G", "Ninja"], check=True, capture_output=True,
                   timeout=300)
    subprocess.run(["cmake", "--build", str(emu / "build")], check=True, capture_output=True, timeout=600)
    lib = ctypes.CDLL(str(emu / "build" / "libecont_emulator.so"))
    lib.econt_emulate.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_void_p]
    lib.econt_emulate.restype = ctypes.c_int
    return lib


def emulate(lib, calq):
    calq = np.ascontiguousarray(calq, dtype=np.float32)
    out = np.full((len(calq), lib.econt_latent_size()), -7.0, dtype=np.float32)
    rc = lib.econt_emulate(calq.ctypes.data, len(calq), out.ctypes.data)
    return rc, out


def compare_emulator_with_predict(lib, run, events, tmp_path):
    ddaq("predict", run, "--data", events, "-o", str(tmp_path / "pred.h5"))
    with h5py.File(events, "r") as f:
        calq = f["calq"][:]
    with h5py.File(tmp_path / "pred.h5", "r") as f:
        expected = f["latent"][:]
    rc, got = emulate(lib, calq)
    assert rc == 0
    mismatching = int((got.view(np.uint32) != expected.view(np.uint32)).sum())
    assert mismatching == 0, f"{mismatching} of {got.size} latent values differ from ddaq predict"
    assert len({tuple(r) for r in got}) > 100  # a comparison that means something
    return len(calq)


def test_emulator_library_equals_predict_bit_for_bit(tmp_path):
    run = shared_run()
    lib = build_emulator(tmp_path, run)
    assert compare_emulator_with_predict(lib, run, os.path.join(run, "test.h5"), tmp_path) == 5000
    # Bad input: code 1, nothing written.
    for bad in (-1.0, np.nan, np.inf):
        calq = np.ones((3, 48), dtype=np.float32)
        calq[2, 5] = bad
        rc, out = emulate(lib, calq)
        assert rc == 1 and (out == -7.0).all()
    assert lib.econt_emulate(None, 1, None) == 2


def test_emulator_library_equals_predict_on_10000_real_wafers(tmp_path):
    csv = os.path.join(SHARED, "hgcal", "jet_pt20_eta15-30_0PU.csv")
    if not os.path.exists(csv):
        pytest.skip(f"real data not found: {csv}")
    run = shared_run()
    lib = build_emulator(tmp_path, run)
    ddaq("data", "import", csv, "-o", str(tmp_path / "jets.h5"))
    ddaq("data", "slice", str(tmp_path / "jets.h5"), "--start", "0", "--stop", "10000", "-o", str(tmp_path / "real.h5"))
    assert compare_emulator_with_predict(lib, run, str(tmp_path / "real.h5"), tmp_path) == 10000


def run_graph_and_check_every_part(tmp_path, config, parts):
    """`ddaq run experiments/graphs/CONFIG`, every part exported (QONNX + HLS), each through qonnx's executor,
    hls4ml's documented flow and the Xilinx headers: bit-exact. Returns the run folder."""
    fwkit_or_skip()
    run = str(tmp_path / "run")
    ddaq("run", os.path.join(ROOT, "experiments", "graphs", config), "-o", run)
    export(run, tmp_path, "--part", "all", "--qonnx", str(tmp_path / "m.onnx"), "--hls", str(tmp_path / "prj"),
           "--tb-samples", "300")
    for part in parts:
        check_qonnx_and_hls4ml(tmp_path, part, ("parallel",))
        rc, out = tool([os.path.join(FWKIT, "xilinx_csim.sh"), str(tmp_path / "prj" / part)], tmp_path)
        assert rc == 0 and ", 0 mismatching outputs" in out, out
    return run


def test_dense_encoder_graph_exports_bit_exact_through_the_real_flows(tmp_path):
    """experiments/graphs/dense_encoder.json (a graph config: 4x4x3 layout -> dense -> dense -> latent, per-layer
    bits) trained, then exported and checked by qonnx's executor, hls4ml's documented QONNX flow and the Xilinx
    headers, and its emulator library against ddaq predict."""
    run = run_graph_and_check_every_part(tmp_path, "dense_encoder.json", ("encoder", "classifier"))
    # The encoder has no convolution: its QONNX holds MatMul nodes and no Conv.
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.encoder.onnx")).graph.node}
    assert "MatMul" in ops and "Conv" not in ops, ops
    lib = build_emulator(tmp_path, run)
    events = str(tmp_path / "wafers.h5")
    ddaq("data", "synth", "-o", events, "--events", "10000", "--seed", "7", "--pileup", "10")
    assert compare_emulator_with_predict(lib, run, events, tmp_path) == 10000



def test_pixel_detector_graph_exports_bit_exact_through_the_real_flows(tmp_path):
    """experiments/graphs/pixel16.json (a 16 x 16 pixel matrix with its own geometry, generic links) trained, then
    its encoder and trigger head exported and checked by qonnx's executor, hls4ml's documented QONNX flow and the
    Xilinx headers on testbench data made from its own pixel events; the emulator library (ECON-T's front end) is
    refused in one line and leaves nothing."""
    run = run_graph_and_check_every_part(tmp_path, "pixel16.json", ("encoder", "trigger"))
    proc = ddaq("export", run, "--emulator", str(tmp_path / "emu"), check=False)
    assert proc.returncode != 0 and "emulates the ECON-T front end" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "emu").exists()
