"""How time and memory grow with N: prepare + teacher kNN, baselines, a short student training, and the
teacher kNN on a Dask LocalCluster against one process.

For each N in --sizes, three stages run one after another, each in a fresh Python process so that its
peak RSS (resource.getrusage ru_maxrss, which counts mapped file pages that were touched) is its own:

  prepare    data.prepare(spec, mmap=True) (load, split, write the memory-mapped prepared folder, content
             hash) + the exact teacher top-k (default 100) of a fixed set of --queries (10k) rows among all N
             (ecd.knn.teacher_topk, default shards: one per 512 MB), faiss on --threads threads
  baselines  PCA-64, PQ32 (pq:32x256) and SQ8, each fitted on at most --max-train training rows, the whole
             database encoded, 1000 queries evaluated against the teacher top-k (recall@10)
  student    training targets (teacher top-L of a sample of at most --student-rows training rows among them,
             ecd.student.train_targets) and
             --steps steps of the default student (d'=64) training
Then, on the same data: the teacher kNN of the --queries rows on a Dask LocalCluster of 2 workers x 1 thread
(--dask-shards shards, workers reading the memory-mapped .npy themselves; cluster start excluded and shown
apart), divided by the single-process time with 2 faiss threads, and whether both top-k agree exactly.
Finally the growth exponent a of time ~ N^a of each stage (least squares on log-log, >= 2 sizes).

    .venv/bin/python benchmarks/bench_scale.py --sizes 50000,100000              # synthetic 384-d
    .venv/bin/python benchmarks/bench_scale.py --sizes 50000,100000,200000,400000,1000000 --out scale.json
    .venv/bin/python benchmarks/bench_scale.py --dataset glove-words-minilm --sizes 50000,100000,200000,400000

`--dataset glove-words-minilm` encodes the first N GloVe words with the bundled all-MiniLM-L6-v2 (cached in
ECD_DATA_DIR, chunk by chunk, resumable; 400k words take a long while on CPU); synthetic data (Gaussian
clusters, `synthetic:NxD`) is generated into a temporary data folder unless --data-dir is given.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BASELINES = ("pca:64", "pq:32x256", "sq:8")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spec(args, n: int) -> tuple[str, int | None]:
    if args.dataset == "synthetic":
        from ecd.data import resolve_synthetic
        return resolve_synthetic(f"synthetic:{n}x{args.dim}"), None
    return args.dataset, n


def _queries(n: int, nq: int) -> np.ndarray:
    return np.sort(np.random.default_rng(0).choice(n, min(nq, n - 1), replace=False))


# ---- stages (each runs in its own process) ----------------------------------------------
def stage_prepare(args, n: int) -> dict:
    from ecd.core import set_threads
    from ecd.data import prepare
    from ecd.knn import teacher_topk
    set_threads(args.threads)
    spec, max_items = _spec(args, n)
    t0 = time.perf_counter()
    prep = prepare(spec, max_items=max_items, mmap=True)
    t1 = time.perf_counter()
    q = _queries(prep.emb.n, args.queries)
    tk = teacher_topk(prep.emb.vectors, q, k=args.k, split="bench", cache_dir=prep.path / "knn")
    t2 = time.perf_counter()
    return {"n": prep.emb.n, "dim": prep.emb.dim, "data_s": t1 - t0, "knn_s": t2 - t1, "s": t2 - t0,
            "knn_shards": tk.manifest["computed_by"]["shards"], "path": str(prep.path)}


def _eval_data(args, n: int):
    from ecd.data import prepare
    from ecd.evaluate import EvalData
    from ecd.knn import teacher_topk
    spec, max_items = _spec(args, n)
    prep = prepare(spec, max_items=max_items, mmap=True)
    q = _queries(prep.emb.n, args.queries)
    tk = teacher_topk(prep.emb.vectors, q, k=args.k, split="bench", cache_dir=prep.path / "knn")
    assert tk.from_cache
    m = min(1000, len(q))
    return prep, EvalData(prep.emb.vectors, q[:m], tk.ids[:m], tk.scores[:m], train_idx=prep.split["train"])


def stage_baselines(args, n: int) -> dict:
    import dataclasses
    from ecd.codecs import parse_rep
    from ecd.core import set_threads
    from ecd.evaluate import evaluate_rep
    set_threads(args.threads)
    prep, ev = _eval_data(args, n)
    tr = ev.train_idx
    if args.max_train and len(tr) > args.max_train:
        tr = np.sort(np.random.default_rng(0).choice(tr, args.max_train, replace=False))
    ev = dataclasses.replace(ev, train_idx=tr)
    out, t0 = {}, time.perf_counter()
    for spec in BASELINES:
        t = time.perf_counter()
        rows = evaluate_rep(parse_rep(spec, seed=0), ev, ks=(10,))
        out[spec] = {"s": time.perf_counter() - t, "recall@10": float(rows[0]["recall@10"])}
    return {"s": time.perf_counter() - t0, "n_fit": int(len(tr)), "reps": out}


def stage_student(args, n: int) -> dict:
    from ecd.core import set_threads
    from ecd.student import train_targets
    from ecd.train import check_train_config, fit
    set_threads(args.threads)
    prep, _ = _eval_data(args, n)
    cfg = check_train_config({"train": {"steps": args.steps, "threads": args.threads, "device": "cpu"},
                              "eval": {"every": 0}})
    pool = max(cfg.train.hard_negative.pool_l, cfg.loss.listwise_top_l, 10)
    t0 = time.perf_counter()
    tk = train_targets(prep, pool, max_rows=args.student_rows)
    t1 = time.perf_counter()
    fit(cfg, prep.emb.vectors[tk.rows], tk.ids, None, out_dir=None, verbose=False)
    t2 = time.perf_counter()
    return {"s": t2 - t0, "targets_s": t1 - t0, "fit_s": t2 - t1, "train_rows": int(len(tk.rows)), "steps": args.steps}


def stage_dask(args, n: int) -> dict:
    "Teacher kNN of the fixed queries: one process with 2 faiss threads vs a LocalCluster of 2 workers x 1 thread."
    import faiss
    from ecd.data import prepare
    from ecd.knn import dask_client, exact_topk, sharded_topk
    spec, max_items = _spec(args, n)
    prep = prepare(spec, max_items=max_items, mmap=True)
    x = prep.emb.vectors
    q = _queries(prep.emb.n, args.queries)
    faiss.omp_set_num_threads(2)
    t = time.perf_counter()
    s1, i1 = exact_topk(x, x[q], args.k, exclude_ids=q)
    single_s = time.perf_counter() - t
    t = time.perf_counter()
    with dask_client("dask", workers=2) as client:
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        s2, i2, st = sharded_topk(x, k=args.k, query_idx=q, exclude_ids=q, shards=args.dask_shards, client=client,
                                 threads=1, return_stats=True)
        dask_s = time.perf_counter() - t
    return {"single_2threads_s": single_s, "dask_2x1_s": dask_s, "cluster_start_s": start_s,
            "ratio": dask_s / single_s, "identical": bool(np.array_equal(i1, i2)),
            # ids can swap only where two scores agree to float rounding (BLAS blocks differ between a shard
            # and the whole index); then the scores rank by rank still agree to ~1e-6
            "positions_equal": float((i1 == i2).mean()),
            "sets_equal": float(np.mean([len(np.intersect1d(a, b)) / len(a) for a, b in zip(i1, i2)])),
            "score_maxdiff": float(np.abs(s1 - s2).max()), "shards": st["shards"],
            "workers_read_file": st["workers_read_file"]}


STAGES = {"prepare": stage_prepare, "baselines": stage_baselines, "student": stage_student, "dask": stage_dask}


def run_stage(args, stage: str, n: int, env: dict) -> dict:
    "Run one stage in a fresh process; returns its result with wall time and peak RSS."
    cmd = [sys.executable, __file__, "--_stage", stage, "--_n", str(n)] + args.passthrough
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"stage {stage} at N={n} failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_s"] = wall
    return res


def growth(ns, ts) -> float | None:
    "The exponent a of t ~ N^a (least squares on log-log), or None for fewer than 2 sizes."
    if len(ns) < 2:
        return None
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000,100000", help="comma-separated N (default 50000,100000)")
    ap.add_argument("--dataset", default="synthetic", help="synthetic (NxD Gaussian clusters) or glove-words-minilm")
    ap.add_argument("--dim", type=int, default=384, help="dimension of the synthetic data (default 384)")
    ap.add_argument("--queries", type=int, default=10000, help="teacher kNN queries, fixed for every N (default 10000)")
    ap.add_argument("--k", type=int, default=100, help="teacher top-k (default 100)")
    ap.add_argument("--threads", type=int, default=2, help="faiss/torch threads of the stages (default 2)")
    ap.add_argument("--max-train", type=int, default=200_000, help="codec training rows at most (default 200000)")
    ap.add_argument("--steps", type=int, default=200, help="student training steps (default 200)")
    ap.add_argument("--student-rows", type=int, default=100_000,
                    help="training rows of the student (targets: their teacher top-L among them; default 100000)")
    ap.add_argument("--dask-shards", type=int, default=4, help="shards of the Dask teacher kNN (default 4)")
    ap.add_argument("--stages", default="prepare,baselines,student,dask", help="stages to run (default: all)")
    ap.add_argument("--data-dir", default=None, help="ECD_DATA_DIR for the run (default: a temporary folder for "
                    "synthetic data, the usual data dir for glove-words-minilm so its encodings are reused)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    ap.add_argument("--_stage", help=argparse.SUPPRESS)
    ap.add_argument("--_n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._stage:
        res = STAGES[args._stage](args, args._n)
        res["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(res))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    stages = [s for s in args.stages.split(",") if s]
    args.passthrough = ["--dataset", args.dataset, "--dim", str(args.dim), "--queries", str(args.queries),
                        "--k", str(args.k), "--threads", str(args.threads), "--max-train", str(args.max_train),
                        "--steps", str(args.steps), "--dask-shards", str(args.dask_shards),
                        "--student-rows", str(args.student_rows)]
    tmp = None
    if args.data_dir is None and args.dataset == "synthetic":
        tmp = tempfile.TemporaryDirectory(prefix="ecd-bench-scale-")
        args.data_dir = tmp.name
    env = {**os.environ, "TQDM_DISABLE": "1"}
    if args.data_dir:
        env["ECD_DATA_DIR"] = str(Path(args.data_dir).resolve())
    print(f"bench_scale: dataset={args.dataset} dim={args.dim} sizes={sizes} queries={args.queries} k={args.k} "
          f"threads={args.threads} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for n in sizes:
        if args.dataset == "synthetic":   # generate the source first (not timed: it stands for the user's data)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"from ecd.data import resolve_synthetic; "
                            f"resolve_synthetic('synthetic:{n}x{args.dim}')"], env=env, check=True)
            gen_s = time.perf_counter() - t
        else:
            gen_s = None
        row = {"n": n, "generate_s": gen_s}
        for st in stages:
            row[st] = run_stage(args, st, n, env)
        results.append(row)
        p, b, s, d = (row.get(k, {}) for k in ("prepare", "baselines", "student", "dask"))
        parts = []
        if p: parts.append(f"prepare {p['s']:.1f}s (kNN {p['knn_s']:.1f}s) {p['peak_rss_mb']:.0f}MB")
        if b: parts.append(f"baselines {b['s']:.1f}s {b['peak_rss_mb']:.0f}MB")
        if s: parts.append(f"student {s['s']:.1f}s {s['peak_rss_mb']:.0f}MB")
        if d: parts.append(f"dask/single {d['ratio']:.2f} identical={d['identical']} (ids equal "
                           f"{d['positions_equal']:.5f}, same sets {d['sets_equal']:.5f}, max score diff "
                           f"{d['score_maxdiff']:.1e})")
        print(f"N={n}: " + " | ".join(parts), flush=True)

    # the table
    print()
    print(f"{'N':>9} {'prepare s':>10} {'kNN s':>7} {'RSS MB':>7} {'baselines s':>12} {'RSS MB':>7} "
          f"{'student s':>10} {'RSS MB':>7} {'single s':>9} {'dask s':>7} {'ratio':>6} {'same':>5}")
    for r in results:
        p, b, s, d = (r.get(k, {}) for k in ("prepare", "baselines", "student", "dask"))
        f = lambda v, w, fmt=".1f": f"{v:>{w}{fmt}}" if isinstance(v, (int, float)) else f"{'-':>{w}}"
        print(f"{r['n']:>9} {f(p.get('s'), 10)} {f(p.get('knn_s'), 7)} {f(p.get('peak_rss_mb'), 7, '.0f')} "
              f"{f(b.get('s'), 12)} {f(b.get('peak_rss_mb'), 7, '.0f')} {f(s.get('s'), 10)} "
              f"{f(s.get('peak_rss_mb'), 7, '.0f')} {f(d.get('single_2threads_s'), 9, '.2f')} "
              f"{f(d.get('dask_2x1_s'), 7, '.2f')} {f(d.get('ratio'), 6, '.2f')} {str(d.get('identical', '-')):>5}")
    ns = [r["n"] for r in results]
    exps = {}
    for name, key in (("prepare", ("prepare", "s")), ("teacher kNN", ("prepare", "knn_s")),
                      ("baselines", ("baselines", "s")), ("student", ("student", "s"))):
        ts = [r.get(key[0], {}).get(key[1]) for r in results]
        if all(isinstance(t, (int, float)) and t > 0 for t in ts):
            exps[name] = growth(ns, ts)
    if any(v is not None for v in exps.values()):
        print("growth exponent a (time ~ N^a): " + ", ".join(f"{k} {v:.2f}" for k, v in exps.items() if v is not None))
    doc = {"args": {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "passthrough"},
           "machine": {"cpus": os.cpu_count(), "load_at_end": os.getloadavg()}, "results": results, "growth": exps}
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1))
        print(f"written {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
