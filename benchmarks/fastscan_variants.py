"""Fast-scan variants: what was tried for a learned 16 B fast-scan code beyond `llsqfs` (08a_learned's table), rerun.

    .venv/bin/python benchmarks/fastscan_variants.py [--variants all | name,name,...] [--out variants.json]

The search bench asks a learned fast-scan code at 16 B to keep 0.03 more of the teacher's top-10 than the best classic
fast-scan code (`lsqfs:30`); `llsqfs:30` (LSQ fast-scan's codes, the norm's weight fitted) gives ~0.01. Each variant
here changes what the code keeps instead. Same data, split and queries as `bench_search.py` (glove-words-minilm 50k,
the 40,000 training rows, the first 1,000 test queries, recall@10 against the teacher, each query's own row left out).
Rows named `fast-scan` are searched through the faiss index ecd builds; the others score the reconstruction exactly in
float, `<q, x_hat> - w ||x_hat||^2` at the best `w` of a small grid (on these codes fast-scan's 8-bit tables and
stored norm lose < 0.002, 08a_learned). Variants: baseline, train_rows, llsqfs_distilled, rq_distilled, alternate,
anisotropic, local_metric, pca, scalar, additive_norm, query_weight. `--out` updates the variants it ran in an existing file. Minutes each on 2 cores; the whole set ~25 min.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from ecd.codecs import parse_rep
from ecd.core import set_threads
from ecd.evaluate import evaluate_rep
from ecd.learned import LearnedLSQFastScan, unpack_codes
from ecd.runs import load_eval_data, prepare_run

WS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
LSQFS, RQFS = "lsqfs:30,max_train=8738", "rqfs:30,max_train=8738"   # trained on the rows the 4-bit codes took by default
# when this was run (ecd.codecs.AdditiveCodec.auto_train gives them up to 65,536 rows since; `train_rows` compares)
KNOBS = dict(lr=5e-4, rec_weight=0.3)                 # the search bench's distillation knobs


class Data:
    "The bench's run: unit database rows, the test queries, their teacher top-10, the training rows."
    def __init__(self, run_id="frontier_glove-words-minilm_50000"):
        prepare_run(run_id, "glove-words-minilm", max_items=50000, k=100, seed=0)
        self.run_id, self.ev = run_id, load_eval_data(run_id, "test", 1000)
        x = self.ev.database.astype(np.float32)
        self.x = x / np.linalg.norm(x, axis=1, keepdims=True)
        self.q, self.truth, self.tr = self.x[self.ev.query_idx], self.ev.truth_ids[:, :10], self.ev.train_idx

    def sample(self, n, seed=0):
        "`n` training rows (seeded), as LSQ's `max_train` takes them."
        return np.ascontiguousarray(self.x[self.tr][np.sort(np.random.default_rng(seed).choice(len(self.tr), n, replace=False))])

    def recall(self, xh, bias=None, q=None):
        "recall@10 of ranking by `<q, xh> + bias` (bias: (n,) or None)."
        q = self.q if q is None else q
        s = q @ xh.T + (0 if bias is None else bias[None])
        s[np.arange(len(q)), self.ev.query_idx] = -np.inf
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        return round(float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(top, self.truth)]) / 10), 4)

    def best_w(self, xh, q=None):
        "The best recall over the norm weights `WS` and that weight."
        n = np.einsum("ij,ij->i", xh, xh)
        return max((self.recall(xh, -w * n, q), w) for w in WS)

    def rep_recall(self, rep, fit=True):
        "recall@10 of an ecd representation searched through its faiss index."
        return round(evaluate_rep(rep, self.ev, scopes=("vs_teacher",), ks=(10,), fit=fit)[0]["recall@10"], 4)


def decode(C, codes):
    return sum(C[m][codes[:, m]] for m in range(C.shape[0])).astype(np.float32)


def lsq(x_train, x, M=30, nbits=4):
    "faiss LSQ (its defaults) trained on `x_train`: codebooks (M, K, d) and the codes of `x` (n, M)."
    q = faiss.LocalSearchQuantizer(x.shape[1], M, nbits)
    q.train(np.ascontiguousarray(x_train))
    C = faiss.vector_to_array(q.codebooks).reshape(M, 1 << nbits, x.shape[1])
    return C, unpack_codes(q.compute_codes(np.ascontiguousarray(x)), M, nbits)


def icm(x, C, codes, eta, sweeps=3, bs=10000):
    "Codes minimizing the anisotropic loss ||r||^2 + eta <x, r>^2 (r = x - x_hat), by iterated conditional modes from `codes`."
    Xt, Ct = torch.from_numpy(x), torch.from_numpy(C)
    out = torch.from_numpy(codes.astype(np.int64)).clone()
    M = C.shape[0]
    nrm = (Ct * Ct).sum(-1)
    for s in range(0, len(x), bs):
        xb, c = Xt[s:s + bs], out[s:s + bs]
        r = xb - Ct[torch.arange(M)[None], c].sum(1)
        xc = torch.einsum("bd,mkd->bmk", xb, Ct)
        for _ in range(sweeps):
            for m in range(M):
                r0 = r + Ct[m][c[:, m]]
                a = (xb * r0).sum(1, keepdim=True)
                c[:, m] = j = (-2 * r0 @ Ct[m].T + nrm[m][None] + eta * (a - xc[:, m]) ** 2).argmin(1)
                r = r0 - Ct[m][j]
    return out.numpy()


def refit(x, codes, C0, eta, iters=30):
    "Codebooks minimizing the same loss over `codes`, by conjugate gradients from `C0`."
    Xt = torch.from_numpy(x).double()
    M, K, d = C0.shape
    flat = torch.from_numpy(codes.astype(np.int64)) + torch.arange(M)[None] * K
    def scatter(v):
        out = torch.zeros(M * K, d, dtype=torch.float64)
        out.index_add_(0, flat.reshape(-1), v.repeat_interleave(M, 0))
        return out
    A = lambda c: scatter((lambda xh: xh + eta * Xt * (Xt * xh).sum(1, keepdim=True))(c[flat].sum(1)))
    b = scatter(Xt + eta * Xt * (Xt * Xt).sum(1, keepdim=True))
    c = torch.from_numpy(C0.reshape(M * K, d)).double()
    r = b - A(c); p = r.clone(); rs = (r * r).sum()
    for _ in range(iters):
        Ap = A(p); al = rs / (p * Ap).sum(); c = c + al * p; r = r - al * Ap
        rn = (r * r).sum(); p = r + (rn / rs) * p; rs = rn
    return c.reshape(M, K, d).float().numpy()


class _RQFastScanScored(LearnedLSQFastScan):
    "`llsqfs`'s learned tables over RQ fast-scan's codes and norm codes (`rqfs:M`) instead of LSQ fast-scan's."
    def _fit_encoder(self, x):
        self._use_encoder(self._init)
        aq = self.encoder.rq
        self._norm_tabs = faiss.vector_to_array(aq.norm_tabs).reshape(2, 16).copy()
        C = faiss.vector_to_array(aq.codebooks).reshape(aq.M, 16, aq.d)
        return np.concatenate([C, np.zeros((2, 16, aq.d), np.float32)])


def v_baseline(D):
    base = parse_rep(LSQFS)
    fs = D.rep_recall(base)
    code = LearnedLSQFastScan.from_lsqfs(base)
    return {"lsqfs:30 fast-scan": fs, "llsqfs:30 fast-scan (steps 0)": D.rep_recall(code)}


def v_train_rows(D):
    out = {}
    for n in (8738, 20000):
        C, codes = lsq(D.sample(n), D.x)
        xh = decode(C, codes)
        out[f"LSQ 30x4 from {n} rows: L2 / best w"] = (D.recall(xh, -0.5 * np.einsum("ij,ij->i", xh, xh)), D.best_w(xh))
    return out


def v_llsqfs_distilled(D):
    base = parse_rep(LSQFS).fit(D.x[D.tr])
    return {"llsqfs:30 distilled 1500 steps, fast-scan": D.rep_recall(LearnedLSQFastScan.from_lsqfs(base, steps=1500, **KNOBS))}


def v_rq_distilled(D):
    base = parse_rep(RQFS)
    out = {"rqfs:30 fast-scan": D.rep_recall(base)}
    code = _RQFastScanScored(30, steps=1500, **KNOBS)
    code._init = base
    out["rqfs:30 codes, llsqfs tables distilled 1500 steps, fast-scan"] = D.rep_recall(code)
    return out


def v_alternate(D, rounds=2, steps=300):
    "Distill, put the distilled codebooks back into the LSQ encoder, re-encode; repeat."
    base = parse_rep(LSQFS).fit(D.x[D.tr])
    cur, out = base, {}
    for r in range(rounds):
        code = LearnedLSQFastScan.from_lsqfs(cur, steps=steps, **KNOBS)
        out[f"round {r + 1}: distilled ({steps} steps), fast-scan"] = D.rep_recall(code)
        enc = faiss.clone_index(code.encoder)
        faiss.copy_array_to_vector(np.ascontiguousarray(code.codebooks[:30]).ravel(), enc.lsq.codebooks)
        enc.lsq.compute_codebook_tables()
        cur = copy.copy(base)
        cur.index = enc
        out[f"round {r + 1}: re-encoded with them, L2, fast-scan"] = D.rep_recall(cur, fit=False)
    return out


def v_anisotropic(D):
    "ScaNN's score-aware loss on LSQ 32x4 (20,000 training rows): encode by it, refit the codebooks by it, encode again."
    C, codes = lsq(D.sample(20000), D.x, M=32)
    out = {"eta 0 (LSQ 32x4)": D.best_w(decode(C, codes))}
    for eta in (1, 4, 16):
        c1 = icm(D.x, C, codes, eta)
        C2 = refit(D.x[D.tr], c1[D.tr], C, eta)
        out[f"eta {eta}"] = D.best_w(decode(C2, icm(D.x, C2, c1, eta)))
    return out


def v_local_metric(D):
    "LSQ 30x4 on Sigma_u^p x (Sigma_u: covariance of the offsets from each training row to its teacher top-10), mapped back."
    e = load_eval_data(D.run_id, "train")
    off = (D.x[e.truth_ids[:, :10]] - D.x[e.query_idx][:, None, :]).reshape(-1, D.x.shape[1])
    lam, V = np.linalg.eigh(off.T @ off / len(off))
    lam = np.maximum(lam, 1e-12)
    out = {}
    for p, ridge in ((0.25, 0.1), (0.5, 0.1), (0.5, 1.0)):
        l2 = lam + ridge * lam.mean()
        T, Ti = ((V * l2 ** p) @ V.T).astype(np.float32), ((V * l2 ** -p) @ V.T).astype(np.float32)
        C, codes = lsq(D.sample(8738) @ T, D.x @ T)
        out[f"p {p}, ridge {ridge}"] = D.best_w(decode(C, codes) @ Ti)
    return out


def v_pca(D):
    "PCA (uncentred, so inner products stay inner products) to fewer dims, then LSQ 30x4."
    lam, V = np.linalg.eigh(np.cov(D.x[D.tr].T))
    out = {}
    for d in (192, 128, 96):
        P = V[:, np.argsort(lam)[::-1][:d]].astype(np.float32)
        C, codes = lsq(D.sample(8738) @ P, D.x @ P)
        out[f"PCA {d}"] = D.best_w(decode(C, codes), D.q @ P)
    return out


def v_scalar(D):
    "Another scalar in place of the stored norm, over LSQ fast-scan's 30 codebooks."
    base = parse_rep(LSQFS).fit(D.x[D.tr])
    aq = base.index.lsq
    C = faiss.vector_to_array(aq.codebooks).reshape(30, 16, -1)
    xh = decode(C, unpack_codes(aq.compute_codes(D.x), 32, 4)[:, :30])
    r = D.x - xh
    n, xr, rr = (np.einsum("ij,ij->i", a, b) for a, b in ((xh, xh), (D.x, r), (r, r)))
    out = {f"<x, x - x_hat> * {a}": D.recall(xh, a * xr) for a in (0.5, 0.8)}
    out.update({f"-0.35 ||x_hat||^2 + {g} ||x - x_hat||^2": D.recall(xh, -0.35 * n + g * rr) for g in (-0.1, 0.0, 0.1)})
    return out


def v_additive_norm(D):
    "No norm codes: 32 codebooks, the norm fitted as one additive table per codebook (least squares)."
    C, codes = lsq(D.sample(20000), D.x, M=32)
    xh = decode(C, codes)
    n = np.einsum("ij,ij->i", xh, xh)
    A = np.zeros((len(xh), 32 * 16), np.float32)
    A[np.arange(len(xh))[:, None], codes + np.arange(32)[None] * 16] = 1
    add = A @ np.linalg.lstsq(A, n, rcond=None)[0]
    return {"exact norm, best w": D.best_w(xh), "additive norm, best w": max((D.recall(xh, -w * add), w) for w in WS)}


def v_query_weight(D, n_train=8000):
    "A norm weight linear in the query, w(q) = w0 + <a, q>, regressed (ridge) on training queries' soft-best weights."
    base = parse_rep(LSQFS).fit(D.x[D.tr])
    aq = base.index.lsq
    xh = decode(faiss.vector_to_array(aq.codebooks).reshape(30, 16, -1), unpack_codes(aq.compute_codes(D.x), 32, 4)[:, :30])
    n, grid = np.einsum("ij,ij->i", xh, xh), np.round(np.arange(0.1, 0.65, 0.05), 2)
    e = load_eval_data(D.run_id, "train", n_train)
    hits = []
    for i in range(0, n_train, 2000):
        qi, t = e.query_idx[i:i + 2000], e.truth_ids[i:i + 2000, :10]
        s0 = D.x[qi] @ xh.T
        per = []
        for w in grid:
            s = s0 - w * n[None]
            s[np.arange(len(qi)), qi] = -np.inf
            per.append([len(np.intersect1d(a, b)) / 10 for a, b in zip(np.argpartition(-s, 10, axis=1)[:, :10], t)])
        hits.append(np.array(per))
    P = np.concatenate(hits, 1)
    soft = np.exp(P / 0.02)
    target = (grid[:, None] * soft).sum(0) / soft.sum(0)
    lift = lambda q: np.hstack([q, np.ones((len(q), 1), np.float32)])
    A = lift(D.x[e.query_idx])
    out = {"fixed w (best of the grid)": D.best_w(xh)}
    for lam in (10.0, 100.0):
        coef = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ target)
        wq = lift(D.q) @ coef
        s = D.q @ xh.T - wq[:, None] * n[None]
        s[np.arange(len(D.q)), D.ev.query_idx] = -np.inf
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        out[f"w(q), ridge {lam}"] = round(float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(top, D.truth)]) / 10), 4)
    return out


VARIANTS = {k[2:]: v for k, v in globals().items() if k.startswith("v_")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="all", help=f"'all' or a comma list of: {', '.join(VARIANTS)}")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    names = list(VARIANTS) if a.variants == "all" else a.variants.split(",")
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    set_threads()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    D, results = Data(), {}
    for n in names:
        t0 = time.perf_counter()
        results[n] = VARIANTS[n](D)
        print(f"{n} ({time.perf_counter() - t0:.0f} s):", flush=True)
        for k, v in results[n].items():
            print(f"  {k}: {v}", flush=True)
    if a.out:
        import subprocess
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
        if Path(a.out).exists():        # a partial rerun updates its variants, keeping the others
            results = {**json.loads(Path(a.out).read_text()).get("results", {}), **results}
        Path(a.out).write_text(json.dumps({"results": results, "faiss": faiss.__version__, "torch": torch.__version__, "commit": commit,
                                           "run_id": D.run_id, "queries": len(D.q)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
