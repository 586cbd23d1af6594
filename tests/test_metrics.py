"Tests of ecd.metrics: hand cases, and agreement with ranx and ir-measures on random rankings."
import numpy as np
import pytest

from ecd.metrics import (hit_at_k, match_columns, mrr_at_k, ndcg_at_k, neighbor_metrics, neighbor_overlap_at_k,
                         rank_grades, recall_at_k, set_recall_at_k, spearman_at_k)

NQ, W = 200, 30


def random_rankings(nq=NQ, width=W, universe=400, seed=0):
    "Teacher rankings and predictions sharing a random part of them, with -1 padding in pred."
    rng = np.random.default_rng(seed)
    truth = np.stack([rng.permutation(universe)[:width] for _ in range(nq)])
    pred = np.empty_like(truth)
    for i in range(nq):
        own = rng.permutation(truth[i])[: rng.integers(0, width + 1)]
        rest = rng.permutation(np.setdiff1d(np.arange(universe), own))[: width - len(own)]
        pred[i] = rng.permutation(np.concatenate([own, rest]))
    pad = rng.integers(5, width + 1, nq)
    pred[np.arange(width)[None, :] >= pad[:, None]] = -1
    return pred, truth


@pytest.fixture(scope="module")
def data():
    pred, truth = random_rankings()
    rng = np.random.default_rng(5)
    rel = truth[:, :12].copy()
    rel[np.arange(12)[None, :] >= rng.integers(1, 13, NQ)[:, None]] = -1
    gains = rng.integers(1, 4, rel.shape)
    return pred, truth, rel, gains


# query ids are zero-padded: ranx returns per-query values in sorted query-id order
def as_dicts(ids, grades):
    return {f"q{i:04d}": {f"d{d}": int(g) for d, g in zip(ids[i], grades[i]) if d >= 0 and g > 0} for i in range(len(ids))}


def run_dict(pred):
    return {f"q{i:04d}": {f"d{d}": float(W - j) for j, d in enumerate(pred[i]) if d >= 0} for i in range(len(pred))}


# ---------------------------------------------------------------- ranx
@pytest.fixture(scope="module")
def ranx_scores(data):
    from ranx import Qrels, Run, evaluate
    pred, truth, rel, gains = data
    run = Run(run_dict(pred))
    out = {}
    for k in (1, 5, 10, 30):
        bin_q = Qrels(as_dicts(truth[:, :k], np.ones((NQ, k))))
        graded_q = Qrels(as_dicts(truth[:, :k], rank_grades(truth, k)))
        top1 = Qrels(as_dicts(truth[:, :1], np.ones((NQ, 1))))
        out[("recall", k)] = evaluate(bin_q, run, f"recall@{k}", return_mean=False)
        out[("ndcg", k)] = evaluate(graded_q, run, f"ndcg@{k}", return_mean=False)
        out[("mrr", k)] = evaluate(top1, run, f"mrr@{k}", return_mean=False)
        out[("hit", k)] = evaluate(top1, run, f"hit_rate@{k}", return_mean=False)
        out[("set_recall", k)] = evaluate(Qrels(as_dicts(rel, np.ones(rel.shape))), run, f"recall@{k}", return_mean=False)
        out[("ndcg_gains", k)] = evaluate(Qrels(as_dicts(rel, gains)), run, f"ndcg@{k}", return_mean=False)
    return out


def ecd_scores(data, name, k):
    pred, truth, rel, gains = data
    return {"recall": lambda: recall_at_k(pred, truth, k, per_query=True),
            "ndcg": lambda: ndcg_at_k(pred, truth, k, per_query=True),
            "mrr": lambda: mrr_at_k(pred, truth[:, :1], k, per_query=True),
            "hit": lambda: hit_at_k(pred, truth[:, :1], k, per_query=True),
            "set_recall": lambda: set_recall_at_k(pred, rel, k, per_query=True),
            "ndcg_gains": lambda: ndcg_at_k(pred, rel, k, gains=gains, per_query=True)}[name]()


NAMES = ["recall", "ndcg", "mrr", "hit", "set_recall", "ndcg_gains"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_against_ranx(data, ranx_scores, name, k):
    ours = ecd_scores(data, name, k)
    theirs = np.asarray(ranx_scores[(name, k)], dtype=np.float64)
    assert ours.shape == theirs.shape == (NQ,)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # the value is not trivially constant on this data
    if name not in ("hit", "mrr") or k > 1:
        assert ours.std() > 0


# ---------------------------------------------------------------- ir-measures (trec_eval)
@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_against_ir_measures(data, k):
    import ir_measures
    from ir_measures import RR, Qrel, R, ScoredDoc, Success, nDCG
    pred, truth, rel, gains = data

    def qrels(ids, grades):
        return [Qrel(f"q{i}", f"d{d}", int(g)) for i in range(NQ) for d, g in zip(ids[i], grades[i]) if d >= 0 and g > 0]

    run = [ScoredDoc(f"q{i}", f"d{d}", float(W - j)) for i in range(NQ) for j, d in enumerate(pred[i]) if d >= 0]

    def calc(measure, qr):
        vals = {m.query_id: m.value for m in ir_measures.iter_calc([measure], qr, run)}
        return np.array([vals.get(f"q{i}", 0.0) for i in range(NQ)])

    top1 = qrels(truth[:, :1], np.ones((NQ, 1)))
    cases = {"recall": calc(R @ k, qrels(truth[:, :k], np.ones((NQ, k)))),
             "ndcg": calc(nDCG @ k, qrels(truth[:, :k], rank_grades(truth, k))),
             "mrr": calc(RR @ k, top1), "hit": calc(Success @ k, top1),
             "set_recall": calc(R @ k, qrels(rel, np.ones(rel.shape))),
             "ndcg_gains": calc(nDCG @ k, qrels(rel, gains))}
    for name, theirs in cases.items():
        np.testing.assert_allclose(ecd_scores(data, name, k), theirs, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------- hand cases
def test_hand_recall_overlap():
    pred = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, -1, -1]])
    truth = np.array([[1, 3, 10, 11], [8, 7, 6, 5], [1, -1, -1, -1]])
    np.testing.assert_allclose(recall_at_k(pred, truth, 2, per_query=True), [0.5, 0, 1])
    np.testing.assert_allclose(recall_at_k(pred, truth, 4, per_query=True), [0.5, 1, 1])
    np.testing.assert_allclose(neighbor_overlap_at_k(pred, truth, 4, per_query=True), [0.5, 1, 0.25])
    assert recall_at_k(pred, truth, 4) == pytest.approx(2.5 / 3)
    # full truth lists: overlap == recall
    p, t = random_rankings(seed=3)
    assert neighbor_overlap_at_k(p, t, 10) == pytest.approx(recall_at_k(p, t, 10))


def test_hand_ndcg():
    t = np.array([[10, 11, 12]])
    assert ndcg_at_k(t, t, 3) == pytest.approx(1.0)
    # grades 3, 2, 1 (linear gain): pred [12, 10, 99] -> (1 + 3/log2 3) / (3 + 2/log2 3 + 1/2)
    exp = (1 + 3 / np.log2(3)) / (3 + 2 / np.log2(3) + 1 / 2)
    assert ndcg_at_k(np.array([[12, 10, 99]]), t, 3) == pytest.approx(exp)
    assert ndcg_at_k(np.array([[0, 1, 2]]), t, 3) == 0.0


def test_hand_mrr_hit_set_recall():
    P = np.array([[3, 1, 2, 9], [4, 5, 6, 7], [8, -1, -1, -1], [1, 2, 3, 4]])
    R = np.array([[1, 2, -1], [0, -1, -1], [8, 9, 10], [-1, -1, -1]])
    np.testing.assert_allclose(mrr_at_k(P, R, 3, per_query=True), [0.5, 0, 1, np.nan])
    np.testing.assert_allclose(hit_at_k(P, R, 1, per_query=True), [0, 0, 1, np.nan])
    np.testing.assert_allclose(set_recall_at_k(P, R, 4, per_query=True), [1, 0, 1 / 3, np.nan])
    assert mrr_at_k(P, R, 3) == pytest.approx(0.5)


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr
    rng = np.random.default_rng(0)
    t = rng.normal(size=(100, 25))
    s = t + rng.normal(scale=1.0, size=t.shape)
    s[:, :4] = np.round(s[:, :4])  # some ties
    ref = [spearmanr(a, b).statistic for a, b in zip(t, s)]
    np.testing.assert_allclose(spearman_at_k(t, s, per_query=True), ref, atol=1e-10)
    assert spearman_at_k(t, s) == pytest.approx(np.mean(ref))


def test_match_columns_large_ids():
    p = np.array([[4, 2, 9, -1], [1, 2, 3, 4]])
    t = np.array([[2, 4, -1], [4, 3, 7]])
    expect = [[1, 0, -1, -1], [-1, -1, 1, 0]]
    np.testing.assert_array_equal(match_columns(p, t), expect)
    big = 2**61
    np.testing.assert_array_equal(match_columns(np.where(p >= 0, p + big, -1), np.where(t >= 0, t + big, -1)), expect)


def test_neighbor_metrics(data):
    pred, truth, _, _ = data
    rng = np.random.default_rng(1)
    ts = rng.normal(size=(NQ, 20)); ss = ts + rng.normal(size=ts.shape)
    m = neighbor_metrics(pred, truth, ks=(1, 10, 100), teacher_scores=ts, student_scores=ss)
    assert set(m) == {f"{n}@{k}" for n in ("recall", "ndcg", "overlap", "mrr", "hit") for k in (1, 10)} | {"spearman@20"}
    for k in (1, 10):
        assert m[f"recall@{k}"] == pytest.approx(recall_at_k(pred, truth, k))
        assert m[f"ndcg@{k}"] == pytest.approx(ndcg_at_k(pred, truth, k))
        assert m[f"overlap@{k}"] == pytest.approx(neighbor_overlap_at_k(pred, truth, k))
        assert m[f"mrr@{k}"] == pytest.approx(mrr_at_k(pred, truth[:, :1], k))
        assert m[f"hit@{k}"] == pytest.approx(hit_at_k(pred, truth[:, :1], k))
    assert m["spearman@20"] == pytest.approx(spearman_at_k(ts, ss))
    assert all(isinstance(v, float) for v in m.values())


@pytest.mark.parametrize("call, msg", [
    (lambda: recall_at_k([[1, 2]], [[1, 2]], 3), "use k <= 2"),
    (lambda: recall_at_k([[1, 2]], [[1, 2], [3, 4]], 1), "pred has 1 queries but truth has 2"),
    (lambda: recall_at_k([[1, 1]], [[1, 2]], 1), "lists id 1 more than once"),
    (lambda: recall_at_k([1, 2], [[1, 2]], 1), "must be a 2-D"),
    (lambda: recall_at_k([[1.0, 2.0]], [[1, 2]], 1), "integer ids"),
    (lambda: recall_at_k([[1, 2]], [[1, 2]], 0), "positive int"),
    (lambda: ndcg_at_k([[1, 2]], [[1, 2]], 2, gains=[[1, -1]]), ">= 0"),
    (lambda: mrr_at_k([[1, 2]], [[-5]], 1), "below -1"),
    (lambda: spearman_at_k(np.ones((2, 3)), np.ones((2, 4))), "must both be"),
    (lambda: spearman_at_k(np.ones((2, 1)), np.ones((2, 1))), "at least 2 items"),
    (lambda: spearman_at_k(np.full((2, 3), np.nan), np.ones((2, 3))), "finite"),
    (lambda: neighbor_metrics([[1, 2]], [[1, 2]], ks=(5,)), "use ks <= 2"),
    (lambda: neighbor_metrics([[1, 2]], [[1, 2]], ks=(1,), student_scores=np.ones((1, 2))), "Pass both"),
])
def test_errors(call, msg):
    with pytest.raises(ValueError) as e:
        call()
    assert msg in str(e.value)
