#!/usr/bin/python3
"""Training throughput: ddaq vs the same model and loss in Python PyTorch, and
2 ranks vs 1 rank. A benchmark, not a test: it prints events/s and ratios.

Usage: /usr/bin/python3 scripts/bench_train.py [--build build] [--threads 1]
       [--batches 32,256,2048] [--repeats 3]

Model (both sides): the ECON-T pipeline of experiments/econt/quick.json
(front end with a learnable zero-suppression threshold, 8x8 layout, quantized
conv 8x3x3/2 -> dense 16 encoder with 6-bit weights and a 3-bit latent, float
decoder dense -> conv-transpose -> conv -> softmax over the 48 cells, quantized
classifier 16 -> 8 -> 1), loss weighted MSE + 0.1 BCE, Adam with a cosine
schedule, on synthetic wafers with labels. The Python version uses plain
straight-through fake quantization (round, clip) and does not compute ddaq's
extra per-step terms (EBOPs, relaxed e-links): any bias favours Python.
Timings: events/s over the steps after a warm-up, data loading included on
both sides; the best of --repeats runs each (machines here are noisy).
"""
import argparse
import json
import os
import re
import socket
import subprocess
import tempfile
import time

import h5py
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------- the Python model
def fake_quant(x, width, integer, signed, round_half_even):
    frac = width - integer
    scale = 2.0 ** frac
    if signed:
        lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    else:
        lo, hi = 0, 2 ** width - 1
    with torch.no_grad():
        q = torch.round(x * scale) if round_half_even else torch.floor(x * scale)
        q = q.clamp(lo, hi) / scale
    inside = ((x >= lo / scale) & (x <= hi / scale)).to(x.dtype)
    return x * inside + (q - x * inside).detach()


def layout8x8():
    rows = [line for line in open(os.path.join(ROOT, "core", "data", "hgcal_layout8x8.csv")) if not line.startswith("#")]
    grid_to_cell = [int(v) for line in rows for v in line.strip().split(",")]
    cell_to_grid, placed = [0] * 48, [False] * 48
    for col in range(8):  # first occurrence in column-major order, as ddaq
        for row in range(8):
            p = row * 8 + col
            tc = grid_to_cell[p]
            if not placed[tc]:
                placed[tc], cell_to_grid[tc] = True, p
    return torch.tensor(grid_to_cell), torch.tensor(cell_to_grid)


class EconT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.threshold = torch.nn.Parameter(torch.zeros(()))
        self.conv = torch.nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.dense = torch.nn.Linear(128, 16)
        self.dec_dense = torch.nn.Linear(16, 128)
        self.dec_up = torch.nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
        self.dec_out = torch.nn.Conv2d(8, 1, 3, padding=1, bias=False)
        self.cls1 = torch.nn.Linear(16, 8)
        self.cls2 = torch.nn.Linear(8, 1)
        self.grid_to_cell, self.cell_to_grid = layout8x8()

    @staticmethod
    def qw(w):
        return fake_quant(w, 6, 1, True, True)

    def forward(self, calq):
        gate = torch.sigmoid((calq - self.threshold) / 0.5)
        kept = calq * gate
        s = kept.sum(1, keepdim=True)
        target = kept / s.clamp_min(1e-6)
        scale = torch.exp2(torch.floor(torch.log2(s.detach().clamp_min(1.0))))
        x = fake_quant(kept / scale, 10, 3, False, False)
        grid = x.index_select(1, self.grid_to_cell).reshape(-1, 1, 8, 8)
        h = torch.nn.functional.conv2d(grid, self.qw(self.conv.weight), self.qw(self.conv.bias), stride=2, padding=1)
        h = fake_quant(torch.relu(fake_quant(h, 16, 6, True, False)), 8, 3, False, False)
        z = torch.nn.functional.linear(h.reshape(h.shape[0], -1), self.qw(self.dense.weight), self.qw(self.dense.bias))
        latent = fake_quant(torch.relu(fake_quant(z, 16, 6, True, False)), 3, 2, False, False)
        d = torch.relu(self.dec_dense(latent)).view(-1, 8, 4, 4)
        d = torch.relu(self.dec_up(d))
        cells = self.dec_out(d).reshape(-1, 64).index_select(1, self.cell_to_grid)
        recon = torch.softmax(cells, 1)
        c = fake_quant(latent, 16, 8, False, False)
        c = torch.nn.functional.linear(c, self.qw(self.cls1.weight), self.qw(self.cls1.bias))
        c = fake_quant(torch.relu(fake_quant(c, 16, 6, True, False)), 8, 3, False, False)
        logits = fake_quant(torch.nn.functional.linear(c, self.qw(self.cls2.weight), self.qw(self.cls2.bias)), 16, 6,
                            True, False).reshape(-1)
        return target, recon, logits


def python_events_per_second(path, batch, steps, warmup, threads, seed=1):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with h5py.File(path, "r") as f:
        calq = np.asarray(f["calq"], dtype=np.float32)
        label = np.asarray(f["label"], dtype=np.float32)
    model = EconT()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps + warmup)
    rng = np.random.default_rng(seed)
    order, cursor = rng.permutation(len(calq)), 0
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        if cursor + batch > len(order):
            order, cursor = rng.permutation(len(calq)), 0
        idx = np.sort(order[cursor:cursor + batch])
        cursor += batch
        x, y = torch.from_numpy(calq[idx]), torch.from_numpy(label[idx])
        target, recon, logits = model(x)
        loss = ((target - recon).pow(2) * torch.maximum(target, recon)).mean()
        loss = loss + 0.1 * torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return batch * steps / (time.perf_counter() - t0)


# ----------------------------------------------------------------- ddaq runs
def write_config(tmp, batch, threads):
    with open(os.path.join(ROOT, "experiments", "econt", "quick.json")) as f:
        c = json.load(f)
    c["training"].update({"batch_size": batch, "threads": threads, "loss": "weighted_mse", "epochs": 1000})
    c["training"].pop("surrogate", None)
    path = os.path.join(tmp, f"bench_{batch}.json")
    with open(path, "w") as f:
        json.dump(c, f)
    return path


def ddaq_events_per_second(exe, config, data, run, steps, world=1):
    """events/s as `ddaq train` reports it (training steps, all ranks)."""
    env = dict(os.environ, DDAQ_PROGRESS="off", OMP_NUM_THREADS="1")
    cmd = [exe, "train", config, "-o", run, "--data", data, "--max-steps", str(steps), "--overwrite"]
    if world == 1:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                                               MASTER_PORT=str(port)), stdout=subprocess.PIPE, text=True)
                 for r in range(world)]
        outs = [p.communicate()[0] for p in procs]
        assert all(p.returncode == 0 for p in procs)
        out = outs[0]
    return float(re.search(r"\(([0-9.]+) events/s", out).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="32,256,2048")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    exe = os.path.join(args.build, "core", "ddaq")
    print(f"torch {torch.__version__}, {args.threads} intra-op thread(s), best of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "train.h5")
        subprocess.run([exe, "data", "synth", "--events", "60000", "--seed", "1", "-o", data], check=True,
                       capture_output=True, env=dict(os.environ, DDAQ_PROGRESS="off"))
        print(f"{'batch':>6} {'steps':>6} {'ddaq ev/s':>11} {'python ev/s':>12} {'ddaq/python':>12}")
        for batch in [int(b) for b in args.batches.split(",")]:
            steps = max(20, min(400, 40000 // batch))
            warmup = max(3, steps // 10)
            config = write_config(tmp, batch, args.threads)
            # ddaq's figure covers every step; run warm-up + steps so both time similar work.
            d = max(ddaq_events_per_second(exe, config, data, os.path.join(tmp, f"r{batch}"), warmup + steps)
                    for _ in range(args.repeats))
            p = max(python_events_per_second(data, batch, steps, warmup, args.threads) for _ in range(args.repeats))
            print(f"{batch:>6} {steps:>6} {d:>11.0f} {p:>12.0f} {d / p:>12.2f}")
        print("\ndata parallel (Gloo on loopback, 1 thread per rank), global batch = ranks x per-rank batch:")
        print(f"{'per-rank batch':>15} {'1 rank ev/s':>12} {'2 ranks ev/s':>13} {'ratio':>6}")
        for batch in (256, 2048):
            steps = max(20, min(200, 40000 // batch))
            one = max(ddaq_events_per_second(exe, write_config(tmp, batch, 1), data, os.path.join(tmp, "one"), steps)
                      for _ in range(args.repeats))
            two = max(ddaq_events_per_second(exe, write_config(tmp, 2 * batch, 1), data, os.path.join(tmp, "two"), steps,
                                             world=2) for _ in range(args.repeats))
            print(f"{batch:>15} {one:>12.0f} {two:>13.0f} {two / one:>6.2f}")


if __name__ == "__main__":
    main()
