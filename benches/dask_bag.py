#!/usr/bin/env python3
"""Dask's side of rdask's `bag_names` benchmark case (examples/bench/bag_names.rs):
the seed's pipeline

    db.read_text(glob).map(json.loads).pluck('name').frequencies().topk(10, key=1)

over the same gzipped JSON-lines files (a partition per file, as in rdask),
computed on LocalCluster(n_workers=2, threads_per_worker=1, processes=True),
RUNS times (BAG_RUNS, default 3), each timed from building the bag to the
result, with the CPU seconds the two worker processes used in it. The files are
made by the rdask case (run it first); their manifest gives the expected
counts, which every run is checked against. Prints one JSON line.

Run with the venv of ../shared/bench/compare.py:
  ~/.cache/rdask-bench/daskenv/bin/python benches/dask_bag.py
BAG_DIR sets where the files are (default: <tmp>/rdask-bag-json, as rdask's).
"""
import json
import os
import statistics
import sys
import tempfile
import time

import dask
import dask.bag as db
import psutil
from distributed import Client, LocalCluster

RUNS = int(os.environ.get("BAG_RUNS", "3"))


def own_cpu_s():
    t = psutil.Process().cpu_times()
    return t.user + t.system


def workers_cpu_s(client):
    """CPU seconds the worker processes have used (the machine is shared,
    so CPU time compares better than wall time)."""
    return sum(client.run(own_cpu_s).values())


def main():
    bag_dir = os.environ.get("BAG_DIR") or os.path.join(tempfile.gettempdir(), "rdask-bag-json")
    manifest_path = os.path.join(bag_dir, "manifest.json")
    if not os.path.exists(manifest_path):
        sys.exit(f"no {manifest_path}: run `bench -- bag_names` first, it makes the files")
    with open(manifest_path) as f:
        manifest = json.load(f)
    glob = os.path.join(bag_dir, "names-*.json.gz")
    expect = sorted(manifest["counts"].values(), reverse=True)[:10]
    for name in sorted(os.listdir(bag_dir)):
        # warm the page cache, as the rdask case does
        with open(os.path.join(bag_dir, name), "rb") as f:
            while f.read(1 << 24):
                pass
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(len, [1]).result()  # warm up
        walls, cpus = [], []
        top = None
        load_start = os.getloadavg()[0]
        for _ in range(RUNS):
            c0 = workers_cpu_s(client)
            t0 = time.perf_counter()
            top = db.read_text(glob).map(json.loads).pluck("name").frequencies().topk(10, key=1).compute()
            walls.append(time.perf_counter() - t0)
            cpus.append(workers_cpu_s(client) - c0)
            got = [n for _, n in top]
            assert got == expect, (got, expect)
        best = min(walls)
        print(json.dumps({"case": "bag_names", "dask": dask.__version__, "files": manifest["files"],
                          "lines": manifest["lines"], "text_bytes": manifest["text_bytes"],
                          "gz_bytes": manifest["gz_bytes"], "runs": RUNS,
                          "dask_s": [round(w, 3) for w in walls], "dask_best_s": round(best, 3),
                          "dask_median_s": round(statistics.median(walls), 3),
                          "dask_text_mb_per_s": round(manifest["text_bytes"] / best / 1e6, 1),
                          "dask_lines_per_s": round(manifest["lines"] / best, 1),
                          "dask_cpu_workers_s": [round(c, 3) for c in cpus],
                          "top": [[k, n] for k, n in top],
                          "loadavg1_at_start": round(load_start, 2),
                          "loadavg1_at_end": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
