"""Per-combo overhead of the papermill and dask executors against inline, from one run.

    python benchmarks/bench_sweep.py [--combos 6] [--workers 1]

The same grid of cheap baseline combos (PCA on 2,000 synthetic 64-d points) runs three times into a
temporary store: inline, papermill (one kernel per combo, `--workers` at once) and dask (a LocalCluster of
`--workers` single-threaded processes, started inside the timing). Overhead per combo =
(executor wall time - inline wall time) / combos; the ratio is executor wall / inline wall.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--combos", type=int, default=6)
    p.add_argument("--workers", type=int, default=1, help="kernels / dask workers at once (1 = sequential, like inline)")
    a = p.parse_args(argv)
    d = tempfile.mkdtemp(prefix="bench_sweep_")
    os.environ.update(ECD_RESULTS_DIR=f"{d}/results", ECD_DATA_DIR=f"{d}/data", ECD_PAPERMILL_DIR=f"{d}/papermill_runs",
                      ECD_LOG_LEVEL="WARNING", ECD_THREADS=os.environ.get("ECD_THREADS", "1"))
    from ecd.data import synthetic_vectors
    from ecd.sweep import ensure_run, load_sweep_config, run_sweep
    np.save(f"{d}/x.npy", synthetic_vectors(2000, 64, n_clusters=16, seed=0))
    ensure_run("bench", f"npy:{d}/x.npy", k=50)
    dims = list(range(4, 4 + 4 * a.combos, 4))
    cfg = load_sweep_config(overrides=[f"sweep.dataset=npy:{d}/x.npy", "sweep.k=50", "sweep.max_queries=200",
                                       f"sweep.grid={{dim: {dims}}}", "sweep.fixed={mode: pca}"])
    wall = {}
    for ex in ("inline", "papermill", "dask"):
        t0 = time.perf_counter()
        r = run_sweep(cfg, run_id="bench", executor=ex, workers=a.workers, force=True)
        wall[ex] = time.perf_counter() - t0
        assert (r.summary["status"] == "done").all(), r.summary[["combo_id", "status", "error"]]
    n = a.combos
    print(f"{n} combos (pca on 2000 x 64 synthetic, 200 queries), workers={a.workers}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")
    print(f"{'executor':<10} {'wall s':>8} {'s/combo':>8} {'overhead s/combo':>17} {'ratio vs inline':>16}")
    for ex, w in wall.items():
        over = (w - wall["inline"]) / n
        print(f"{ex:<10} {w:8.2f} {w / n:8.2f} {over:17.2f} {w / wall['inline']:16.1f}")
    worst = max((wall[e] - wall["inline"]) / n for e in ("papermill", "dask"))
    print(f"target <= 3 s overhead per combo: {'met' if worst <= 3 else 'NOT met'} (worst {worst:.2f} s)")


if __name__ == "__main__":
    main()
