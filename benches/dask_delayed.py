#!/usr/bin/env python3
"""Dask's side of rdask's `delayed_graph` benchmark case (examples/bench.rs):
the same lazy graph (LEAVES chains inc(inc(i)), then a sum tree of fan-in 8),
built with dask.delayed (its default, impure keys) and computed on LocalCluster(n_workers=2,
threads_per_worker=1, processes=True), timed from the first delayed call to
the result. Prints one JSON line.

Run with the venv of ../shared/bench/compare.py:
  ~/.cache/rdask-bench/daskenv/bin/python benches/dask_delayed.py
"""
import json
import time

import dask
from dask import delayed
from distributed import Client, LocalCluster

LEAVES = 46_000


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


def tree(leaves):
    nodes = 2 * leaves
    level = [delayed(inc)(delayed(inc)(i)) for i in range(leaves)]
    while len(level) > 1:
        level = [delayed(total)(level[i:i + 8]) for i in range(0, len(level), 8)]
        nodes += len(level)
    return level[0], nodes


def main():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(inc, 1).result()  # warm up
        expect = sum(i + 2 for i in range(LEAVES))
        t0 = time.perf_counter()
        root, nodes = tree(LEAVES)
        build_s = time.perf_counter() - t0
        (r,) = dask.compute(root)
        wall = time.perf_counter() - t0
        assert r == expect, (r, expect)
        print(json.dumps({"case": "delayed_graph", "leaves": LEAVES, "nodes": nodes,
                          "dask_build_s": round(build_s, 4), "dask_wall_s": round(wall, 4),
                          "dask_nodes_per_s": round(nodes / wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
