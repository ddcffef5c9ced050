#!/usr/bin/env python3
"""Dask's side of rdask-ml's grid-search benchmark (issue 17; the rdask side
is rdask-ml/examples/ml_bench.rs): dask-ml's GridSearchCV over a
scikit-learn Pipeline(StandardScaler, ElasticNet), 60 candidates
(12 alpha x 5 l1_ratio) x 5 folds (KFold, unshuffled: scikit-learn's cv=5
for a regressor) on a 1,000,000 x 10 table computed with the same formula
as the Rust side (bit-identical), refit included, on
LocalCluster(n_workers=N, threads_per_worker=1, processes=True). Prints one
JSON line per run, {"case": "ml_grid_search", "workers": N, "dask_s": ...}.

Setup: the venv of ../shared/bench/compare.py (made on its first use in
$RDASK_BENCH_VENV, default ~/.cache/rdask-bench/daskenv) plus dask-ml and
scikit-learn:
  ~/.cache/rdask-bench/daskenv/bin/pip install dask-ml scikit-learn
Run from the project's root:
  ~/.cache/rdask-bench/daskenv/bin/python benches/dask_ml_search.py [WORKERS ...] [--rows N] [--precompute]

--precompute gives ElasticNet(precompute=True): scikit-learn then computes
the Gram matrix of the (scaled) train rows in each fit and runs its
Gram-form coordinate descent, the algorithm rdask-ml's search uses with one
Gram matrix per fold; without it, scikit-learn's default (precompute=False,
coordinate descent on the rows).
"""
import json
import os
import sys
import time

# One BLAS thread per worker process, like rdask's 1-thread workers.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402
from dask_ml.model_selection import GridSearchCV  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from sklearn.linear_model import ElasticNet  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

FEATURES = 10
ALPHAS = [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
L1_RATIOS = [0.1, 0.3, 0.5, 0.7, 0.9]


def table(rows):
    """x[i, j] = frac((i + 1) * sqrt(j + 2)) - 0.5; y = x . w + 0.1 * (frac((i + 1) * e) - 0.5),
    the sum taken feature by feature in order, as the Rust side does."""
    i1 = np.arange(1, rows + 1, dtype=np.float64)
    phi = np.sqrt(np.arange(2, FEATURES + 2, dtype=np.float64))
    a = i1[:, None] * phi[None, :]
    x = (a - np.floor(a)) - 0.5
    w = [0.0 if j % 3 == 2 else 1.0 + j for j in range(FEATURES)]
    y = np.zeros(rows)
    for j in range(FEATURES):
        y = y + x[:, j] * w[j]
    b = i1 * np.e
    y = y + 0.1 * ((b - np.floor(b)) - 0.5)
    return np.ascontiguousarray(x), y


def main():
    args = sys.argv[1:]
    rows = 1_000_000
    if "--rows" in args:
        k = args.index("--rows")
        rows = int(args[k + 1])
        del args[k:k + 2]
    precompute = "--precompute" in args
    if precompute:
        args.remove("--precompute")
    workers = [int(a) for a in args] or [2]
    x, y = table(rows)
    grid = {"enet__alpha": ALPHAS, "enet__l1_ratio": L1_RATIOS, "enet__max_iter": [1000], "enet__tol": [1e-4]}
    for n in workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster):
            pipe = Pipeline([("scale", StandardScaler()), ("enet", ElasticNet(precompute=precompute))])
            search = GridSearchCV(pipe, grid, cv=5, refit=True)
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            search.fit(x, y)
            secs = time.perf_counter() - t0
            print(json.dumps({
                "case": "ml_grid_search", "workers": n, "rows": rows,
                "candidates": len(search.cv_results_["params"]), "folds": 5,
                "precompute": precompute,
                "dask_s": round(secs, 3),
                "best_alpha": search.best_params_["enet__alpha"],
                "best_l1_ratio": search.best_params_["enet__l1_ratio"],
                "best_score": round(float(search.best_score_), 6),
                "load1_before": round(load, 2), "load1_after": round(os.getloadavg()[0], 2),
            }), flush=True)


if __name__ == "__main__":
    main()
