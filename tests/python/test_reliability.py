"""Nothing silent, nothing lost (docs/reliability.md): the `ddaq` executable
against bad input, special files, interruptions and re-runs, one test per
class of failure. Every command is the real executable; files are checked
with h5py/numpy, independently of ddaq's own readers."""
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

EXE = os.environ.get("DDAQ_EXECUTABLE", "build/core/ddaq")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "experiments", "econt", "quick.json")


def env():
    e = dict(os.environ, DDAQ_PROGRESS="off")
    for k in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        e.pop(k, None)
    return e


def ddaq(*args, cwd=None, timeout=300):
    return subprocess.run([EXE, *map(str, args)], env=env(), capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def one_line_error(r, fragment, code=1):
    """The rule for every failure: exit code, one line on stderr, no C++ stack."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("ddaq: error: "), r.stderr
    assert "frame #" not in r.stderr and "Exception raised from" not in r.stderr
    assert fragment in r.stderr, r.stderr


def digest(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def work():
    d = tempfile.mkdtemp(prefix="ddaq_reliability_")
    assert ddaq("data", "synth", "--events", "3000", "--seed", "3", "-o", f"{d}/w.h5").returncode == 0
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tiny_config(work, **training):
    with open(CONFIG) as f:
        c = json.load(f)
    c["training"]["surrogate"] = os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt")
    c["training"].update(training)
    path = f"{work}/cfg_{abs(hash(json.dumps(training, sort_keys=True)))}.json"
    with open(path, "w") as f:
        json.dump(c, f)
    return path


def copy_with(work, name, edit):
    """A copy of w.h5 whose calq/label arrays `edit` changes in place."""
    path = f"{work}/{name}"
    shutil.copy(f"{work}/w.h5", path)
    with h5py.File(path, "r+") as f:
        calq, label = f["calq"][:], f["label"][:]
        edit(calq, label)
        f["calq"][:] = calq
        f["label"][:] = label
    return path


# ---------------------------------------------------------------- non-finite values

def test_non_finite_charges_and_bad_labels_are_refused_naming_file_and_row(work):
    def nan_at(c, _):
        c[1234, 7] = np.nan
    bad = copy_with(work, "nan.h5", nan_at)
    for args in (["train", CONFIG, "-o", f"{work}/nan_run", "--data", bad, "--max-steps", "3"],
                 ["data", "stats", bad], ["emd", bad, bad, "-o", f"{work}/e.h5"]):
        one_line_error(ddaq(*args), f"{bad}: row 1234, cell 7: charge nan is not finite")
    assert not os.path.exists(f"{work}/nan_run") and not os.path.exists(f"{work}/e.h5")

    def label7(_, lab):
        lab[42] = 7
    bad = copy_with(work, "label7.h5", label7)
    one_line_error(ddaq("train", CONFIG, "-o", f"{work}/l7", "--data", bad, "--max-steps", "300"),
                   "label 7 (the classifier is binary")
    assert not os.path.exists(f"{work}/l7")


def test_empty_wafers_are_skipped_in_training_and_counted_in_evaluation(work):
    def empty_every_50th(c, _):
        c[::50] = 0.0
    data = copy_with(work, "empty.h5", empty_every_50th)
    with h5py.File(data) as f:
        expected_empty = int((f["calq"][:].sum(axis=1) == 0).sum())
    assert expected_empty == 60
    run = f"{work}/empty_run"
    r = ddaq("train", tiny_config(work), "-o", run, "--data", data, "--max-steps", "20")
    assert r.returncode == 0, r.stderr
    assert "empty wafers skipped" in r.stdout
    r = ddaq("eval", run, "--data", data)
    assert r.returncode == 0, r.stderr
    assert f"{expected_empty} empty wafers" in r.stdout
    with open(f"{run}/eval.json") as f:
        report = json.load(f)
    assert report["empty_wafers"] == expected_empty
    assert np.isfinite(report["emd_mean"])
    r = ddaq("predict", run, "--data", data, "-o", f"{work}/empty_pred.h5")
    assert r.returncode == 0, r.stderr
    with h5py.File(f"{work}/empty_pred.h5") as f:
        for name in ("calq", "latent", "score"):
            assert np.isfinite(f[name][:]).all(), name


def test_a_non_finite_loss_stops_training_naming_step_term_and_row(work):
    # Charges near float32's maximum: finite, but their sum overflows.
    def huge(c, _):
        c[777, :] = 3.0e38
    data = copy_with(work, "huge.h5", huge)
    run = f"{work}/huge_run"
    r = ddaq("train", tiny_config(work), "-o", run, "--data", data, "--max-steps", "200")
    one_line_error(r, "training stopped at step ")
    assert "the loss term '" in r.stderr and f"row 777 of {data}" in r.stderr
    assert not os.path.exists(run)  # stopped before any checkpoint: nothing left


# ---------------------------------------------------------------- numeric options

NUMERIC = [
    (["data", "synth", "-o", "{w}/x.h5"], ["--events", "--seed", "--pileup", "--electron-fraction"]),
    (["data", "overlay", "{w}/w.h5", "--pool", "{w}/w.h5", "--mu", "1", "-o", "{w}/x.h5"], ["--mu", "--seed"]),
    (["data", "split", "{w}/w.h5", "--train", "{w}/x.h5", "--test", "{w}/y.h5"], ["--test-fraction", "--seed"]),
    (["data", "slice", "{w}/w.h5", "-o", "{w}/x.h5"], ["--start", "--stop", "--label"]),
    (["emd", "{w}/w.h5", "{w}/w.h5", "-o", "{w}/x.h5"], ["--threads"]),
    (["surrogate", "emd", "train", "--data", "{w}/w.h5", "-o", "{w}/x.pt"],
     ["--learning-rate", "--epochs", "--batch-size", "--hidden", "--directions", "--max-wafers", "--threads", "--seed"]),
    (["train", CONFIG, "-o", "{w}/x_run", "--data", "{w}/w.h5"], ["--seed", "--max-steps", "--checkpoint-every"]),
    (["export", "{w}/x_run", "--qonnx", "{w}/x.onnx"], ["--tb-samples", "--reuse-factor", "--seed"]),
]
BAD_VALUES = ["nan", "inf", "-1", "1e30"]


def test_every_numeric_option_is_validated_before_any_work(work):
    checked = 0
    for cmd, options in NUMERIC:
        for opt in options:
            for bad in BAD_VALUES:
                if opt in ("--stop",) and bad in ("-1",):
                    continue  # -1 means "to the end"
                args = [a.format(w=work) for a in cmd] + [opt, bad]
                r = ddaq(*args)
                if r.returncode == 0:
                    # Only values that are in range may pass: none of BAD_VALUES is for these options.
                    pytest.fail(f"ddaq {' '.join(args)} accepted {bad}")
                one_line_error(r, opt, code=2)
                checked += 1
    assert not os.path.exists(f"{work}/x.h5") and not os.path.exists(f"{work}/x.pt")
    assert not os.path.exists(f"{work}/x_run")
    print(f"{checked} bad option values refused")
    # Symbols that would not compile.
    one_line_error(ddaq("export", f"{work}/x_run", "--hls", f"{work}/p", "--name", "int"), "--name", code=2)
    one_line_error(ddaq("export", f"{work}/x_run", "--hls", f"{work}/p", "--name", "9lives"), "--name", code=2)


# ---------------------------------------------------------------- outputs

def test_outputs_never_destroy_inputs_or_special_files(work):
    w = f"{work}/w.h5"
    csv = f"{work}/in.csv"
    with open(csv, "w") as f:
        f.write(",".join(f"CALQ_{i}" for i in range(48)) + "\n" + ",".join(["1"] * 48) + "\n")
    before_csv, before_w = digest(csv), digest(w)
    os.symlink(w, f"{work}/link_to_w.h5")
    cases = [
        (["data", "import", csv, "-o", csv], "is the input"),
        (["data", "slice", w, "-o", w], "is the input"),
        (["data", "slice", w, "-o", f"{work}/link_to_w.h5"], "is the input"),
        (["data", "overlay", w, "--pool", f"{work}/w.h5", "--mu", "1", "-o", w], "is the input"),
        (["data", "split", w, "--train", f"{work}/A.h5", "--test", f"{work}/A.h5"], "names the same file"),
        (["data", "split", w, "--train", f"{work}/A.h5", "--test", f"{work}/./A.h5"], "names the same file"),
        (["emd", w, w, "-o", w], "is the input"),
        (["data", "synth", "-o", "/dev/null", "--events", "5"], "is a device"),
        (["data", "synth", "-o", work, "--events", "5"], "is a folder"),
    ]
    fifo = f"{work}/fifo"
    os.mkfifo(fifo)
    cases.append((["data", "synth", "-o", fifo, "--events", "5"], "is a FIFO"))
    for args, fragment in cases:
        one_line_error(ddaq(*args), fragment)
    assert digest(csv) == before_csv and digest(w) == before_w
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not os.path.exists(f"{work}/A.h5")
    # A symlink output is written through: the target is replaced, the link stays.
    target = f"{work}/target.h5"
    with open(target, "w") as f:
        f.write("old")
    os.symlink(target, f"{work}/link_out.h5")
    r = ddaq("data", "slice", w, "--stop", "10", "-o", f"{work}/link_out.h5")
    assert r.returncode == 0, r.stderr
    assert os.path.islink(f"{work}/link_out.h5")
    with h5py.File(target) as f:
        assert f["calq"].shape == (10, 48)
    # No temporaries anywhere.
    assert not [e for e in os.listdir(work) if ".tmp-" in e]


def test_a_failed_export_leaves_none_of_its_outputs(work):
    run = f"{work}/export_run"
    assert ddaq("train", tiny_config(work), "-o", run, "--data", f"{work}/w.h5", "--max-steps", "3").returncode == 0
    # The README's command, with the trailing slash.
    r = ddaq("export", run, "--qonnx", "model.onnx", "--hls", "prj/", cwd=work)
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(f"{work}/model.onnx") and os.path.isfile(f"{work}/prj/firmware/encoder.cpp")
    # QONNX first, then an HLS folder that cannot be made: neither appears.
    with open(f"{work}/a_file", "w") as f:
        f.write("x")
    r = ddaq("export", run, "--part", "all", "--qonnx", f"{work}/m2.onnx", "--hls", f"{work}/a_file/prj")
    one_line_error(r, "a_file")
    assert not [e for e in os.listdir(work) if e.startswith("m2")]
    assert not [e for e in os.listdir(work) if ".tmp-" in e]
    # An output that is one of the run's own files is refused.
    before = digest(f"{run}/encoder.qstack")
    one_line_error(ddaq("export", run, "--qonnx", f"{run}/encoder.qstack"), "is the input")
    assert digest(f"{run}/encoder.qstack") == before


# ---------------------------------------------------------------- CSV values

def test_csv_values_outside_float32_are_errors_and_denormals_round(work):
    header = ",".join(f"CALQ_{i}" for i in range(48)) + "\n"

    def csv(value, col=5):
        row = ["1"] * 48
        row[col - 1] = value
        path = f"{work}/v.csv"
        with open(path, "w") as f:
            f.write(header + ",".join(["2"] * 48) + "\n" + ",".join(row) + "\n")
        return path
    for v in ("1e39", "1e300", "-1e39", "1e400"):
        path = csv(v)
        one_line_error(ddaq("data", "import", path, "-o", f"{work}/v.h5"), f"{path}:3: column 5 is")
        assert "float32" in ddaq("data", "import", path, "-o", f"{work}/v.h5").stderr
        assert not os.path.exists(f"{work}/v.h5")
    for v, expected in (("1e-320", 0.0), ("1e-40", float(np.float32(1e-40))), ("3.4e38", float(np.float32(3.4e38)))):
        r = ddaq("data", "import", csv(v), "-o", f"{work}/v.h5")
        assert r.returncode == 0, r.stderr
        with h5py.File(f"{work}/v.h5") as f:
            assert float(f["calq"][1, 4]) == expected
        os.remove(f"{work}/v.h5")


# ---------------------------------------------------------------- run folders

def test_run_folder_rules_refuse_overwrite_and_leave_nothing_on_failure(work):
    cfg, data = tiny_config(work), f"{work}/w.h5"
    run = f"{work}/rules"
    assert ddaq("train", cfg, "-o", run, "--data", data, "--max-steps", "3").returncode == 0
    metrics = digest(f"{run}/metrics.jsonl")
    model = digest(f"{run}/encoder.qstack")
    one_line_error(ddaq("train", cfg, "-o", run, "--data", data, "--max-steps", "3"), "holds a run already")
    assert digest(f"{run}/metrics.jsonl") == metrics and digest(f"{run}/encoder.qstack") == model
    # A quantized stack of an earlier graph run is replaced too (export --part
    # all would take it as a part of this run).
    with open(f"{run}/reference.qstack", "w") as f:
        f.write("an earlier graph's stack")
    r = ddaq("train", cfg, "-o", run, "--data", data, "--max-steps", "3", "--seed", "7", "--overwrite")
    assert r.returncode == 0, r.stderr
    with open(f"{run}/metrics.jsonl") as f:
        assert len(f.read().strip().splitlines()) == 1  # replaced, not appended
    assert digest(f"{run}/encoder.qstack") != model
    assert not os.path.exists(f"{run}/reference.qstack")
    one_line_error(ddaq("train", cfg, "-o", run, "--resume", "--overwrite", "--data", data), "excludes", code=2)
    # A failed train into a new folder leaves no folder; into an existing
    # folder, it leaves what was there.
    one_line_error(ddaq("train", cfg, "-o", f"{work}/new_run", "--data", f"{work}/missing.h5"), "missing.h5")
    assert not os.path.exists(f"{work}/new_run")
    os.makedirs(f"{work}/mine")
    with open(f"{work}/mine/notes.txt", "w") as f:
        f.write("keep")
    one_line_error(ddaq("train", cfg, "-o", f"{work}/mine", "--data", f"{work}/missing.h5"), "missing.h5")
    assert os.listdir(f"{work}/mine") == ["notes.txt"]


# ---------------------------------------------------------------- signals and resume

def wait_for(path, proc, seconds=120):
    deadline = time.time() + seconds
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.02)


def state_of(run):
    return {f: digest(f"{run}/{f}") for f in ("encoder.qstack", "classifier.qstack", "decoder.pt")}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_training_with_a_checkpoint_and_resume_is_exact(work, sig):
    # Learned bits and pruning: resume must restore buffers (ranges, masks),
    # not only parameters.
    cfg = tiny_config(work, prune_sparsity=0.5, prune_start_step=2, prune_end_step=40, prune_every=2)
    with open(cfg) as f:
        c = json.load(f)
    c["pipeline"].update({"learn_latent_bits": True, "learn_weight_bits": True})
    with open(cfg, "w") as f:
        json.dump(c, f)
    steps = "60"
    name = signal.Signals(sig).name
    run = f"{work}/sig_{name}"
    p = subprocess.Popen([EXE, "train", cfg, "-o", run, "--data", f"{work}/w.h5", "--max-steps", "100000",
                          "--checkpoint-every", "3"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    wait_for(f"{run}/checkpoint.pt", p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"ddaq: interrupted by {name} at step ") and "continue with --resume" in last, err
    stopped = int(last.split(" at step ")[1].split(";")[0])
    assert stopped < int(steps), f"stopped at {stopped}: the machine was too fast for this test"
    assert not [e for e in os.listdir(run) if ".tmp-" in e]
    r = ddaq("train", cfg, "-o", run, "--data", f"{work}/w.h5", "--max-steps", steps, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resumed at step {stopped}" in r.stdout
    straight = f"{work}/straight_{name}"
    assert ddaq("train", cfg, "-o", straight, "--data", f"{work}/w.h5", "--max-steps", steps).returncode == 0
    assert state_of(run) == state_of(straight)


def test_no_file_descriptor_left_is_a_one_line_error(work):
    # Four descriptors: the shared libraries still load (one open at a time),
    # the signal pipe's two do not fit. It used to abort with a C++ stack.
    def four_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (4, 4))
    r = subprocess.run([EXE, "data", "synth", "-o", f"{work}/fd.h5", "--events", "5"], env=env(),
                       capture_output=True, text=True, timeout=60, preexec_fn=four_descriptors)
    one_line_error(r, "cannot create the signal pipe")
    assert not os.path.exists(f"{work}/fd.h5")


def test_a_signal_during_other_commands_leaves_no_temporaries(work):
    out = f"{work}/big.h5"
    p = subprocess.Popen([EXE, "data", "synth", "--events", "50000000", "-o", out], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not [e for e in os.listdir(work) if e.startswith("big.h5.tmp-")]:
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGINT
    assert err.strip().splitlines()[-1] == "ddaq: interrupted by SIGINT; nothing half-written was left"
    assert not [e for e in os.listdir(work) if e.startswith("big.h5")]


def test_temporaries_of_killed_writers_are_cleaned(work):
    # SIGKILL leaves "<out>.tmp-<pid>"; the next writer of <out> removes it
    # once that pid is gone and the file is 10 minutes old, not before.
    out = f"{work}/killed_out.h5"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    stale, fresh = f"{out}.tmp-{dead.pid}", f"{out}.tmp-{os.getpid()}"
    for path in (stale, fresh):
        with open(path, "w") as f:
            f.write("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(fresh, (old, old))  # this pid is alive: kept
    p = subprocess.Popen([EXE, "data", "synth", "--events", "1000000", "-o", f"{work}/sigkill.h5"], env=env())
    deadline = time.time() + 60
    while not [e for e in os.listdir(work) if e.startswith("sigkill.h5.tmp-")]:
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.02)
    p.kill()
    p.wait()
    left = [e for e in os.listdir(work) if e.startswith("sigkill.h5.tmp-")]
    assert len(left) == 1  # SIGKILL cannot clean up
    os.utime(f"{work}/{left[0]}", (old, old))
    assert ddaq("data", "synth", "--events", "10", "-o", out).returncode == 0
    assert ddaq("data", "synth", "--events", "10", "-o", f"{work}/sigkill.h5").returncode == 0
    assert not os.path.exists(stale) and os.path.exists(fresh)
    assert not [e for e in os.listdir(work) if e.startswith("sigkill.h5.tmp-")]
    os.remove(fresh)


def test_checkpoints_know_files_by_content_not_by_path(work):
    cfg = tiny_config(work)
    elsewhere = f"{work}/elsewhere"
    os.makedirs(elsewhere)
    shutil.copy(f"{work}/w.h5", f"{elsewhere}/data.h5")
    run = f"{work}/by_content"
    # Started with a relative path in one folder ...
    r = ddaq("train", cfg, "-o", run, "--data", "data.h5", "--max-steps", "4", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    # ... resumed from another folder with an absolute path to a copy.
    r = ddaq("train", cfg, "-o", run, "--data", f"{work}/w.h5", "--max-steps", "8", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed at step 4" in r.stdout
    # Changed data and changed augmentation are refused by name.
    def bump(c, _):
        c[10, 3] += 1.0
    changed = copy_with(work, "changed.h5", bump)
    one_line_error(ddaq("train", cfg, "-o", run, "--data", changed, "--max-steps", "12", "--resume"),
                   "written for another configuration: train_data")
    noisy = tiny_config(work, noise=0.25)
    one_line_error(ddaq("train", noisy, "-o", run, "--data", f"{work}/w.h5", "--max-steps", "12", "--resume"),
                   "written for another configuration: augmentation")


# ---------------------------------------------------------------- run files

def test_run_files_carry_their_kind_and_run(work):
    cfg, data = tiny_config(work), f"{work}/w.h5"
    a, b = f"{work}/kind_a", f"{work}/kind_b"
    assert ddaq("train", cfg, "-o", a, "--data", data, "--max-steps", "3").returncode == 0
    assert ddaq("train", cfg, "-o", b, "--data", data, "--max-steps", "4").returncode == 0
    assert ddaq("eval", a, "--data", data, "--events", "100").returncode == 0
    # A file of another run, swapped in.
    shutil.copy(f"{a}/encoder.qstack", f"{work}/enc.bak")
    shutil.copy(f"{b}/encoder.qstack", f"{a}/encoder.qstack")
    for args in (["eval", a, "--data", data], ["predict", a, "--data", data, "-o", f"{work}/p.h5"],
                 ["export", a, "--qonnx", f"{work}/k.onnx"]):
        one_line_error(ddaq(*args), f"{a}/encoder.qstack: belongs to another run")
    assert not os.path.exists(f"{work}/p.h5") and not os.path.exists(f"{work}/k.onnx")
    shutil.copy(f"{work}/enc.bak", f"{a}/encoder.qstack")
    # The classifier where the encoder should be.
    shutil.copy(f"{a}/classifier.qstack", f"{a}/encoder.qstack")
    one_line_error(ddaq("eval", a, "--data", data), "is the classifier of a run, not its encoder")
    shutil.copy(f"{work}/enc.bak", f"{a}/encoder.qstack")
    # Edits of pipeline.json are refused, not ignored.
    for key, value in (("latent_bits", 4), ("threshold", 1.5)):
        with open(f"{a}/pipeline.json") as f:
            original = f.read()
        edited = json.loads(original)
        edited[key] = value
        with open(f"{a}/pipeline.json", "w") as f:
            json.dump(edited, f)
        one_line_error(ddaq("eval", a, "--data", data), f"{a}/pipeline.json: changed after the run was saved")
        with open(f"{a}/pipeline.json", "w") as f:
            f.write(original)
    assert ddaq("eval", a, "--data", data, "--events", "100").returncode == 0
    # Every loader names the file and says what it is instead.
    surrogate = os.path.join(ROOT, "surrogates", "models", "emd_surrogate.pt")
    one_line_error(ddaq("surrogate", "emd", "eval", f"{a}/decoder.pt", "--data", data),
                   f"{a}/decoder.pt: is a ddaq decoder (decoder.pt of a run), not an EMD surrogate")
    one_line_error(ddaq("surrogate", "emd", "eval", f"{a}/checkpoint.pt", "--data", data),
                   f"{a}/checkpoint.pt: is a ddaq training checkpoint, not an EMD surrogate")
    shutil.copy(surrogate, f"{a}/decoder.pt")
    one_line_error(ddaq("eval", a, "--data", data), f"{a}/decoder.pt: is a ddaq EMD surrogate, not a run's decoder")
    shutil.copy(f"{a}/encoder.qstack", f"{a}/checkpoint.pt")
    one_line_error(ddaq("train", cfg, "-o", a, "--data", data, "--max-steps", "5", "--resume"),
                   f"{a}/checkpoint.pt: is a ddaq quantized stack, not a training checkpoint")


def test_a_file_held_open_for_writing_is_named_as_locked(work):
    path = f"{work}/held.h5"
    shutil.copy(f"{work}/w.h5", path)
    with h5py.File(path, "a"):
        r = ddaq("data", "stats", path)
    one_line_error(r, f"{path}: locked by another process that has it open for writing")
    assert ddaq("data", "stats", path).returncode == 0  # closed: readable again


def test_the_main_job_resumes_with_its_data_made_again(work):
    # `ddaq run --resume` makes the synthetic data again (same seed): the
    # files must be the same bytes (no HDF5 timestamps), or the checkpoint's
    # content identity would refuse them.
    cfg = f"{work}/tiny_run.json"
    with open(cfg, "w") as f:
        json.dump({"name": "tiny", "data": {"train_events": 600, "test_events": 200, "pool_events": 200,
                                            "pileup_mu": 5, "seed": 2},
                   "pipeline": {"latent": 16, "latent_bits": 3},
                   "training": {"epochs": 2, "batch_size": 64, "loss": "weighted_mse"}}, f)
    run = f"{work}/main_job"
    r = ddaq("run", cfg, "-o", run)
    assert r.returncode == 0, r.stderr
    before = {n: digest(f"{run}/{n}") for n in ("train.h5", "test.h5", "pool.h5", "encoder.qstack")}
    r = ddaq("run", cfg, "-o", run, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed at step 18" in r.stdout  # 600 // 64 = 9 steps an epoch, 2 epochs: nothing left to train
    assert {n: digest(f"{run}/{n}") for n in before} == before
