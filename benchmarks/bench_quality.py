"""Quality bench of the learned student against PCA, truncation, PQ and OPQ, from one run.

    .venv/bin/python benchmarks/bench_quality.py [--dataset glove-words-minilm --max-items 50000 --queries 1000]
                                                 [--config configs/train/default.yaml --override KEY=VALUE ...]

Prepares the run once (embeddings + teacher top-100 cached under $ECD_DATA_DIR, default ./data), trains
the student with the given config (default: the default config) on CPU once per d' in --dims, and
evaluates on the first --queries test queries against the teacher's top-10 (recall@10 vs teacher):

- the student at each d' (float32), PCA and truncation at the same d';
- OPQ and PQ of the 384-d teacher at 16 and 32 bytes/vector;
- learned-then-quantized candidates at 16 and 32 bytes (student d'=32 + SQ8, student + PQ with 16 or
  32 chunks, student + binary where it fits the budget), with students of --dims and of --quant-dims
  (default 128: a wider student is the better input to a 32-chunk PQ); the best at each budget is marked;
- quantization-aware students (--qat, default int8:32, binary:128, pq:128x32): trained through the quantizer
  that stores them (`quant.mode`), each next to the same-sized float student quantized after training, so the
  table shows what training through the quantizer adds at the same bytes/vector.

It prints one table and the two bars of issue 3: student d'=64 >= PCA-64 + 0.10, and the best
learned-then-quantized representation at 32 B >= OPQ at 32 B; plus the training time per d' (limit 300 s).
The exit status is 1 when a bar is missed.
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from ecd.codecs import parse_rep
from ecd.core import set_threads
from ecd.evaluate import evaluate_rep
from ecd.runs import load_eval_data, prepare_run
from ecd.student import student_rep, train_run
from ecd.learned import LearnedPQ
from ecd.train import load_train_config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-id", default="bench_quality")
    p.add_argument("--dataset", default="glove-words-minilm")
    p.add_argument("--max-items", type=int, default=50000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--dims", default="32,64")
    p.add_argument("--quant-dims", default="128", help="extra student dims trained only to be quantized (PQ at 16/32 B)")
    p.add_argument("--qat", default="int8:32,binary:128,pq:128x32",
                   help="quantization-aware students MODE:DIM[xCHUNKS] (int8, binary, pq); '' for none")
    p.add_argument("--config", default=None)
    p.add_argument("--override", action="append", default=[])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds of training allowed per d'")
    a = p.parse_args(argv)
    set_threads(a.threads or None)
    dims = [int(d) for d in a.dims.split(",")]
    qdims = [int(d) for d in a.quant_dims.split(",") if d and int(d) not in dims]

    t0 = time.perf_counter()
    prepare_run(a.run_id, a.dataset, max_items=a.max_items, k=100)
    ev = load_eval_data(a.run_id, "test", a.queries)
    print(f"data: {a.dataset} n={len(ev.database)} dim={ev.database.shape[1]} test queries={len(ev.query_idx)} "
          f"(prepared in {time.perf_counter() - t0:.0f} s)", flush=True)

    rows, train_s, students = [], {}, {}

    def add(rep, group, **extra):
        r = [x for x in evaluate_rep(rep, ev, ks=(10,)) if x["stage"] == "one_stage"][0]
        rows.append({"group": group, "name": rep.name, "mode": rep.mode, "rep_dim": rep.rep_dim, "bytes": rep.bytes_per_vector,
                     "recall@10": r["recall@10"], **extra})

    def train(d, extra=(), tag=None):
        "Train a student at d' with the config and `extra` overrides into results/<run>/train/<tag>/."
        cfg = load_train_config(a.config, [f"model.out_dim={d}", "train.device=cpu", *extra, *a.override])
        res = train_run(a.run_id, cfg, tag=tag or f"d{d}", verbose=False)
        train_s[d if tag is None else tag] = res.train_s
        return res

    for d in dims + qdims:
        res = train(d)
        print(f"trained d'={d}: {res.train_s:.0f} s ({res.targets_s:.0f} s for the cached training targets), "
              f"best val recall@10={res.best.get('recall@10', float('nan')):.4f}", flush=True)
        students[d] = res.model
        add(student_rep(res.model), "student", train_s=round(res.train_s, 1))
        if d in dims:
            add(parse_rep(f"pca:{d}"), "pca")
            add(parse_rep(f"trunc:{d}"), "trunc")
    for m in (16, 32):
        add(parse_rep(f"opq:{m}x256", seed=0), "opq")
        add(parse_rep(f"pq:{m}x256", seed=0), "pq")
    post_hoc = {"int8": "sq8", "binary": "binary"}
    for item in [t for t in a.qat.split(",") if t]:
        mode, _, rest = item.partition(":")
        d, _, m = rest.partition("x")
        d, m = int(d), int(m or 16)
        extra = [f"quant.mode={mode}"] + ([f"quant.num_chunks={m}", "quant.num_clusters=256"] if mode == "pq" else [])
        res = train(d, extra, tag=f"qat_{mode}_d{d}")
        print(f"trained quantization-aware {item}: {res.train_s:.0f} s", flush=True)
        q = LearnedPQ(res.codebooks.centroids.detach().cpu().numpy()) if mode == "pq" else post_hoc[mode]
        add(student_rep(res.model, q, name=f"qat_{mode}_d{d}"), "learned+quantized", how="quant-aware",
            train_s=round(res.train_s, 1))
        if d not in students:  # the post-hoc twin (same dim, float training), quantized in the loop below
            students[d] = train(d).model
    for d, model in students.items():
        for spec in ("sq8", "pq:16x256", "pq:32x256", "binary"):
            rep = student_rep(model, spec)
            if spec.startswith("pq") and d % int(spec[3:5]):
                continue
            if spec == "sq8" and d not in (16, 32):
                continue
            if spec == "binary" and d // 8 not in (16, 32):
                continue
            add(rep, "learned+quantized", how="post-hoc")
    df = pd.DataFrame(rows)
    lq = df[df.group == "learned+quantized"]
    df["best"] = ""
    for b in (16, 32):
        at = lq[lq.bytes == b]
        if len(at):
            df.loc[at["recall@10"].idxmax(), "best"] = f"best@{b}B"
    pd.set_option("display.width", 200)
    print()
    print(df.sort_values(["group", "bytes"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    ok = True
    for _, q in df[df.get("how", pd.Series(dtype=str)) == "quant-aware"].iterrows():
        twin = df[(df.get("how") == "post-hoc") & (df.rep_dim == q.rep_dim) & (df.bytes == q.bytes)
                  & (df["mode"].str.replace("learnedpq", "pq") == q["mode"].replace("learnedpq", "pq"))]
        if len(twin):
            t = twin.iloc[0]
            print(f"quantization-aware {q['name']} ({q.bytes} B) {q['recall@10']:.4f} vs post-hoc {t['name']} "
                  f"{t['recall@10']:.4f}: {q['recall@10'] - t['recall@10']:+.4f}")
    r = lambda g, n: float(df[(df.group == g) & (df.name == n)]["recall@10"].iloc[0])
    if 64 in students:
        s64, p64 = float(df[(df.group == "student") & (df.rep_dim == 64)]["recall@10"].iloc[0]), r("pca", "pca_d64")
        bar1 = s64 >= p64 + 0.10
        ok &= bar1
        print(f"\nbar 1: student d'=64 {s64:.4f} >= PCA-64 {p64:.4f} + 0.10 = {p64 + 0.10:.4f}: {'PASS' if bar1 else 'FAIL'}")
    best32 = df[df.best == "best@32B"]
    if len(best32):
        b32, o32 = float(best32["recall@10"].iloc[0]), r("opq", "opq_m32_k256")
        bar2 = b32 >= o32
        ok &= bar2
        print(f"bar 2: best learned-then-quantized at 32 B ({best32.name.iloc[0]}) {b32:.4f} >= OPQ-32B {o32:.4f}: "
              f"{'PASS' if bar2 else 'FAIL'}")
    for d, s in train_s.items():
        fine = s <= a.time_limit
        ok &= fine
        print(f"training time {d if isinstance(d, str) else f'd={d}'}: {s:.0f} s (limit {a.time_limit:.0f} s): {'PASS' if fine else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
