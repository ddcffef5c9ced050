#!/usr/bin/env python3
"""Dask's side of rdask-array's `array_center_std` benchmark
(rdask-array/examples/array_bench.rs, issue 11 case (b)): a random
N x N float64 array in CHUNK x CHUNK chunks ->
(x - x.mean(axis=1, keepdims=True)).std(), on
LocalCluster(n_workers=2, threads_per_worker=1, processes=True), timed from
building the graph to the result; then the same with NumPy in this process.
Prints one JSON line per measurement.

Run with the venv of ../shared/bench/compare.py:
  ~/.cache/rdask-bench/daskenv/bin/python benches/dask_array.py [N [CHUNK]]
"""
import json
import os
import sys
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
CHUNK = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000


def main():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(lambda: 1).result()  # warm up
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        x = da.random.random((N, N), chunks=(CHUNK, CHUNK))
        y = (x - x.mean(axis=1, keepdims=True)).std()
        tasks = len(y.__dask_graph__())
        s = float(y.compute())
        wall = time.perf_counter() - t0
        print(json.dumps({"case": "array_center_std", "n": N, "chunk": CHUNK, "dask_tasks": tasks,
                          "workers": 2, "threads_per_worker": 1, "dask_wall_s": round(wall, 3),
                          "std": s, "loadavg1_at_start": load}), flush=True)
    # NumPy, one process, the whole array in memory.
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    rng = np.random.default_rng(2015)
    x = rng.random((N, N))
    s = float((x - x.mean(axis=1, keepdims=True)).std())
    wall = time.perf_counter() - t0
    print(json.dumps({"case": "array_center_std_numpy", "n": N, "numpy_wall_s": round(wall, 3), "std": s,
                      "loadavg1_at_start": load}), flush=True)


if __name__ == "__main__":
    main()
