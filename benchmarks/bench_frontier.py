"""Frontier bench: at each byte budget, the best classic faiss codec against the best learned code, from one run.

    .venv/bin/python benchmarks/bench_frontier.py [--dataset glove-words-minilm --max-items 50000 --queries 1000]
                                                  [--budgets 8,16,32,64] [--steps 300] [--classic SPEC,...]

Prepares the run once (embeddings + teacher top-100 cached under $ECD_DATA_DIR, default ./data), then on the first
--queries test queries against the teacher's top-10 (recall@10 vs teacher, exact search in each representation;
every representation fitted on the run's train split, the whole database added):

- every classic codec of the default baselines (`ecd.runs.baseline_specs` at these budgets: PQ, OPQ, RQ with beam
  16, LSQ, PRQ/PLSQ, OPQ+RQ, RaBitQ, ITQ and sign binary, PCA+SQ8; PQ/OPQ and the additive quantizers with faiss's
  default L2 ranking, the stronger one on unit-norm embeddings) with bytes_per_vector <= the largest budget, or the
  `--classic` list;
- the learned codes (`--learned`: families at each budget B, or specs; by default lrq up to 32 B, llsq up to 16 B
  (LSQ's training grows fast with M) and lopq from 32 B, where OPQ is the strongest classic code): `lrq:Bx8`
  (`ecd.learned.LearnedRQ`: the codes of the classic `rq:Bx8` fitted above, with its beam), `llsq:Bx8`
  (`LearnedLSQ`: the codes of `lsq:Bx8`) and `lopq:Bx256` (`LearnedOPQ`: the codes of `opq:Bx256`), each scored by
  codebooks distilled from the teacher's ranking and a fitted weight of the reconstruction's norm, searched as
  faiss L2 over scaled codebooks; each one's time includes its classic fit;
- the two-stage row: the best learned code at 32 B retrieving the top-100, reranked with the float teacher vectors.

"Best at budget B" is the best recall@10 among representations with bytes_per_vector <= B (everything stored per
vector counted: faiss `sa_code_size()`). It prints one table (best classic name and recall, best learned name and
recall, the difference, training seconds) and the target bars; the exit status is 1 when one is
missed: learned >= classic + 0.03 at 16 and 32 B, learned >= classic at 8 and 64 B, two-stage at 32 B >= 0.99,
training <= 600 s per learned code.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

import pandas as pd

from ecd.codecs import parse_rep
from ecd.core import set_threads
from ecd.evaluate import evaluate_rep
from ecd.learned import LearnedLSQ, LearnedOPQ, LearnedRQ
from ecd.runs import BASELINE_MODES, baseline_specs, load_eval_data, prepare_run

CLASSIC_MODES = tuple(m for m in BASELINE_MODES if m not in ("float32", "fp16", "trunc", "pca", "rp", "sq"))
BARS = {8: 0.0, 16: 0.03, 32: 0.03, 64: 0.0}
LEARNED = {"lrq": ("rq", "{b}x8", LearnedRQ.from_rq), "llsq": ("lsq", "{b}x8", LearnedLSQ.from_lsq),  # family: its
           "lopq": ("opq", "{b}x256", LearnedOPQ.from_opq)}                                           # classic start


def evaluate(spec, ev, seed: int, rerank_r: int | None = None, **params) -> list[dict]:
    rep = parse_rep(spec, seed=seed, **params) if isinstance(spec, str) else spec
    spec = str(spec) if isinstance(spec, str) else rep.name
    t0 = time.perf_counter()
    rows = evaluate_rep(rep, ev, scopes=("vs_teacher",), ks=(1, 10, 100), rerank_r=rerank_r, extra={"spec": spec})
    for r in rows:
        r["total_s"] = time.perf_counter() - t0
    print(f"  {rep.name:<28} {rep.bytes_per_vector:>5} B  recall@10 {rows[0]['recall@10']:.4f}  "
          f"(fit {rows[0]['fit_s']:.0f} s)", flush=True)
    return rows, rep


def best_at(df: pd.DataFrame, budget: int) -> pd.Series | None:
    d = df[(df["bytes_per_vector"] <= budget) & (df["stage"] == "one_stage")]
    return None if d.empty else d.loc[d["recall@10"].idxmax()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="glove-words-minilm")
    p.add_argument("--max-items", type=int, default=50000)
    p.add_argument("--queries", type=int, default=1000, help="test queries evaluated (default 1000)")
    p.add_argument("--run-id", default=None, help="run folder (default: frontier_<dataset>_<max-items>)")
    p.add_argument("--budgets", default="8,16,32,64", help="bytes per vector (default 8,16,32,64)")
    p.add_argument("--classic", default=None, help="classic specs to compare (default: the default baselines)")
    p.add_argument("--steps", type=int, default=300, help="distillation steps of each learned code (default 300)")
    p.add_argument("--learned", default=None,
                   help="learned codes: families (lrq, llsq, lopq: one per budget, e.g. lrq:16x8) or specs "
                        "(lrq:16x8,lopq:64x256); default: lrq up to 32 B, llsq up to 16 B, lopq from 32 B")
    p.add_argument("--rerank-r", type=int, default=100, help="candidates of the two-stage row (default 100)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", default=None, help="also write the table and the rows to this JSON file")
    a = p.parse_args(argv)
    set_threads()
    budgets = sorted(int(b) for b in a.budgets.split(","))
    run_id = a.run_id or f"frontier_{a.dataset}_{a.max_items}".replace(":", "_").replace("/", "_")
    t0 = time.perf_counter()
    m = prepare_run(run_id, a.dataset, max_items=a.max_items, k=100, seed=a.seed)
    dim = m["dataset"]["dim"]
    ev = load_eval_data(run_id, "test", a.queries)
    print(f"run {run_id}: {a.dataset} n={m['dataset']['n']} dim={dim}, {len(ev.query_idx)} test queries "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)

    specs = re.split(r",(?![a-z_]+=)", a.classic) if a.classic else baseline_specs(   # knobs stay: rq:64x8,beam=4
        dim, dims=[b for b in budgets if b <= dim], pq_chunks=[b for b in budgets if dim % b == 0],
        budgets=tuple(budgets), modes=CLASSIC_MODES, rabitq_bits=(1,))
    print(f"classic codecs ({len(specs)}):", flush=True)
    learned_specs = []
    default = [f"{f}:{LEARNED[f][1].format(b=b)}" for b in budgets for f, ok in
               (("lrq", b <= 32), ("llsq", b <= 16), ("lopq", b >= 32 and dim % b == 0)) if ok]
    for f in (t.strip() for t in a.learned.split(",") if t.strip()) if a.learned else default:
        fam = f.split(":")[0]
        if fam not in LEARNED:
            p.error(f"unknown learned code {f!r}; use the families {', '.join(LEARNED)} or their specs (lrq:16x8)")
        learned_specs += [f] if ":" in f else [f"{fam}:{LEARNED[fam][1].format(b=b)}" for b in budgets]
    start_of = {s: LEARNED[s.split(":")[0]][0] + s[s.index(":"):] for s in learned_specs}   # lrq:16x8 -> rq:16x8
    starts = set(start_of.values())
    classic, fitted = [], {}
    for s in specs:
        rows, rep = evaluate(s, ev, a.seed)
        classic += rows
        if s.split(",")[0] in starts:
            fitted[s.split(",")[0]] = (rep, rows[0]["fit_s"])
    print(f"learned codes ({', '.join(learned_specs)}; each starts from the classic code of the same bytes, whose fit "
          "time is counted in):", flush=True)
    learned = []
    for spec in learned_specs:
        start_spec, make = start_of[spec], LEARNED[spec.split(":")[0]][2]
        rep, base_s = fitted.get(start_spec, (None, 0.0))
        if rep is None:                                                   # not among the classic specs: fit it here
            t1 = time.perf_counter()
            try:
                rep = parse_rep(start_spec, seed=a.seed).fit(ev.database[ev.train_idx])
            except ValueError as e:                                       # e.g. opq:48x256 on a 50-dim teacher
                print(f"  {spec}: skipped ({e})", flush=True)
                continue
            base_s = time.perf_counter() - t1
        lrep = make(rep, steps=a.steps)
        rows, _ = evaluate(lrep, ev, a.seed, a.rerank_r if rep.bytes_per_vector == 32 else None)
        for r in rows:
            r["fit_s"] += base_s
            r["spec"] = spec
        learned += rows
    cdf, ldf = pd.DataFrame(classic), pd.DataFrame(learned)

    table, fails = [], []
    for b in budgets:
        c, l = best_at(cdf, b), best_at(ldf, b)
        if l is None or c is None:
            fails.append(f"{b} B: no {'learned' if l is None else 'classic'} representation fits")
            continue
        diff = l["recall@10"] - c["recall@10"]
        table.append({"budget_B": b, "best_classic": c["name"], "classic_recall@10": c["recall@10"],
                      "classic_B": int(c["bytes_per_vector"]), "best_learned": l["name"],
                      "learned_recall@10": l["recall@10"], "learned_B": int(l["bytes_per_vector"]),
                      "difference": diff, "learned_train_s": l["fit_s"]})
        need = BARS.get(b)
        if need is not None and diff < need - 1e-12:
            fails.append(f"{b} B: learned {l['recall@10']:.4f} < classic {c['recall@10']:.4f} + {need}")
        if l["fit_s"] > 600:
            fails.append(f"{b} B: training the learned code took {l['fit_s']:.0f} s > 600 s")
    best32 = best_at(ldf[ldf["bytes_per_vector"] == 32], 32) if len(ldf) else None   # two-stage: the best 32 B code
    two = ldf[(ldf["stage"] == "two_stage") & (ldf["name"] == best32["name"])] if best32 is not None else ldf.iloc[:0]
    out = pd.DataFrame(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\nrecall@10 vs teacher, {len(ev.query_idx)} test queries, best at each budget "
              f"(bytes_per_vector <= budget):")
        print(out.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if len(two):
        r = two.iloc[0]
        print(f"\ntwo-stage: {r['name']} ({int(r['bytes_per_vector'])} B) top-{a.rerank_r} reranked with the teacher: "
              f"recall@10 {r['recall@10']:.4f}")
        if r["recall@10"] < 0.99:
            fails.append(f"two-stage at 32 B: {r['recall@10']:.4f} < 0.99")
    elif 32 in budgets:
        fails.append("two-stage at 32 B: no row")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"table": table, "rows": classic + learned, "run_id": run_id, "queries": len(ev.query_idx)},
                      f, indent=1, default=str)
    for f in fails:
        print(f"BAR MISSED: {f}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
