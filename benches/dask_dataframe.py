#!/usr/bin/env python3
"""Dask's side of rdask-dataframe's benchmarks (a) and (c) of issue 11
(rdask-dataframe/examples/dataframe_bench.rs), on the CSV files that
example writes (columns user_id, value, key; default
$TMPDIR/rdask-df-bench/2015-*-*.csv: run the Rust side first):

  (a) dd.read_csv(files).groupby('user_id').value.mean().compute()
  (c) dd.read_csv(files).set_index('key', shuffle_method='p2p'), then each
      partition's length (every row moves, only counts come back)

on LocalCluster(n_workers=2, threads_per_worker=1, processes=True), timed
from building the graph to the result; then (a) with pandas in this
process. Prints one JSON line per measurement.

Needs pandas and pyarrow beside dask and distributed (the venv of
../shared/bench/compare.py has neither as of this writing:
`~/.cache/rdask-bench/daskenv/bin/pip install pandas pyarrow`).

  ~/.cache/rdask-bench/daskenv/bin/python benches/dask_dataframe.py [DIR]
"""
import glob
import json
import os
import sys
import tempfile
import time

import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.gettempdir(), "rdask-df-bench")
PATTERN = os.path.join(DIR, "2015-*-*.csv")


def main():
    files = sorted(glob.glob(PATTERN))
    if not files:
        sys.exit(f"no files match {PATTERN}: run rdask-dataframe's dataframe_bench example first")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(lambda: 1).result()  # warm up
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        df = dd.read_csv(PATTERN)
        means = df.groupby("user_id").value.mean().compute()
        wall = time.perf_counter() - t0
        print(json.dumps({"case": "dataframe_groupby_mean", "files": len(files), "groups": len(means),
                          "npartitions": df.npartitions, "workers": 2, "threads_per_worker": 1,
                          "dask_wall_s": round(wall, 3), "loadavg1_at_start": load}), flush=True)

        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        df = dd.read_csv(PATTERN)
        indexed = df.set_index("key", shuffle_method="p2p")
        rows = int(indexed.map_partitions(len).compute().sum())
        wall = time.perf_counter() - t0
        print(json.dumps({"case": "dataframe_set_index_shuffle", "files": len(files), "rows": rows,
                          "npartitions": indexed.npartitions, "workers": 2, "threads_per_worker": 1,
                          "dask_wall_s": round(wall, 3), "loadavg1_at_start": load}), flush=True)

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    whole = pd.concat([pd.read_csv(f) for f in files])
    means = whole.groupby("user_id").value.mean()
    wall = time.perf_counter() - t0
    print(json.dumps({"case": "dataframe_groupby_mean_pandas", "files": len(files), "groups": len(means),
                      "pandas_wall_s": round(wall, 3), "loadavg1_at_start": load}), flush=True)


if __name__ == "__main__":
    main()
