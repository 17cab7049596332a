"""A sparse event file of N wafers (3 charged cells each), written in blocks:
/usr/bin/python3 scripts/make_sparse_events.py OUT.h5 N  (docs/benchmarks.md, ddaq data stats memory)."""
import sys
import h5py
import numpy as np
n = int(sys.argv[2]); block = 1 << 20
rng = np.random.default_rng(1)
with h5py.File(sys.argv[1], "w") as f:
    d = f.create_dataset("calq", (n, 48), dtype="f4", chunks=(4096, 48), compression="gzip", compression_opts=1)
    for first in range(0, n, block):
        m = min(block, n - first)
        x = np.zeros((m, 48), np.float32)
        cols = rng.integers(0, 48, (m, 3))
        np.put_along_axis(x, cols, rng.integers(1, 200, (m, 3)).astype(np.float32), axis=1)
        d[first:first + m] = x
    f.attrs["format"] = "ddaq-events-1"
