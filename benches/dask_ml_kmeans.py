#!/usr/bin/env python3
"""Dask's side of rdask-ml's k-means benchmark (issue 17;
rdask-ml/examples/kmeans_bench.rs): dask-ml's KMeans(n_clusters=8) on
N x 10 uniform random points (dask.array.random, CHUNK rows per chunk,
persisted before timing), on LocalCluster(n_workers=2,
threads_per_worker=1, processes=True) as ../shared/bench/dask_baseline.py.
Two timings, one JSON line each:
  kmeans       fit with k-means|| (init_max_iter=INIT_ROUNDS) + ITERS Lloyd
               iterations (tol=0, so exactly ITERS);
  kmeans_lloyd ITERS Lloyd iterations from given centres (init=array), and
               the time per iteration.

dask-ml and scikit-learn are not in compare.py's venv by default; install
them into it once:
  ~/.cache/rdask-bench/daskenv/bin/pip install dask-ml scikit-learn
Run:
  ~/.cache/rdask-bench/daskenv/bin/python benches/dask_ml_kmeans.py [N [CHUNK [ITERS]]]
"""
import json
import os
import sys
import time

import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster, wait
from dask_ml.cluster import KMeans

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
CHUNK = int(sys.argv[2]) if len(sys.argv) > 2 else 500_000
ITERS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
K = 8
D = 10
INIT_ROUNDS = 5


def main():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(lambda: 1).result()  # warm up
        x = da.random.RandomState(0).random_sample((N, D), chunks=(CHUNK, D)).persist()
        wait(x)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        km = KMeans(n_clusters=K, init_max_iter=INIT_ROUNDS, max_iter=ITERS, tol=0, random_state=0)
        km.fit(x)
        full = time.perf_counter() - t0
        print(json.dumps({"case": "kmeans", "n": N, "d": D, "k": K, "chunk": CHUNK, "iters": ITERS,
                          "init_rounds": INIT_ROUNDS, "n_iter": int(km.n_iter_),
                          "inertia": float(km.inertia_), "dask_s": round(full, 3),
                          "load": round(load, 2)}), flush=True)
        init = np.asarray(km.cluster_centers_)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        km2 = KMeans(n_clusters=K, init=init, max_iter=ITERS, tol=0, random_state=0)
        km2.fit(x)
        lloyd = time.perf_counter() - t0
        print(json.dumps({"case": "kmeans_lloyd", "n": N, "iters": int(km2.n_iter_),
                          "dask_s": round(lloyd, 3), "dask_per_iter_s": round(lloyd / km2.n_iter_, 4),
                          "load": round(load, 2)}), flush=True)


if __name__ == "__main__":
    main()
