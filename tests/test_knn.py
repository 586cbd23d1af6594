"Tests of ecd.knn: exact top-k against numpy brute force, self exclusion, the on-disk cache, errors."
import numpy as np
import pytest

import ecd.knn as knn
from ecd.knn import TopK, default_chunk_size, exact_topk, l2_normalize, teacher_topk


def brute(base, queries, k, metric="ip", normalize=True, exclude=None):
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if normalize:
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "ip":
        s = q @ b.T
    else:
        s = -((q ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * q @ b.T)
    if exclude is not None:
        s[np.arange(len(q)), exclude] = -np.inf
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    sc = np.take_along_axis(s, ids, 1)
    return (sc if metric == "ip" else -sc), ids


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(2000, 32)).astype(np.float32), rng.normal(size=(150, 32)).astype(np.float32)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 1, 64])
def test_exact_topk_matches_numpy(data, metric, normalize, chunk_size):
    B, Q = data
    s, i = exact_topk(B, Q, 25, metric=metric, normalize=normalize, chunk_size=chunk_size)
    s0, i0 = brute(B, Q, 25, metric, normalize)
    assert s.shape == i.shape == (150, 25) and s.dtype == np.float32 and i.dtype == np.int64
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_allclose(s, s0, atol=2e-4, rtol=1e-4)


def test_exact_topk_does_not_modify_input(data):
    B, Q = data
    B0, Q0 = B.copy(), Q.copy()
    exact_topk(B, Q, 5)
    np.testing.assert_array_equal(B, B0)
    np.testing.assert_array_equal(Q, Q0)


def test_exclude_self(data):
    B, _ = data
    q = np.random.default_rng(2).choice(len(B), 300, replace=False)
    s, i = exact_topk(B, B[q], 30, exclude_ids=q, chunk_size=100)
    s0, i0 = brute(B, B[q], 30, exclude=q)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_allclose(s, s0, atol=2e-4)
    assert not (i == q[:, None]).any()
    # with duplicates of the query in the base, only the query's own row is dropped
    Bd = np.vstack([B, B[:1]])
    _, idup = exact_topk(Bd, Bd[:1], 3, exclude_ids=[0])
    assert idup[0, 0] == len(B) and 0 not in idup[0]


def test_exclude_absent_id_drops_last(data):
    B, Q = data
    _, full = brute(B, Q, len(B))
    far = full[:, -1]  # the least similar item is never among the top k+1
    np.testing.assert_array_equal(exact_topk(B, Q, 10, exclude_ids=far)[1], full[:, :10])
    np.testing.assert_array_equal(exact_topk(B, Q, 10, exclude_ids=np.full(len(Q), -1))[1], full[:, :10])


def testdrop_excluded_vectorized():
    D = np.array([[9, 8, 7], [6, 5, 4]], np.float32)
    I = np.array([[3, 1, 2], [7, 8, 9]])
    d, i = knn.drop_excluded(D, I, np.array([1, 0]))
    np.testing.assert_array_equal(i, [[3, 2], [7, 8]])
    np.testing.assert_array_equal(d, [[9, 7], [6, 5]])


def test_l2_normalize():
    x = np.array([[3, 4], [0, 0]], np.float64)
    y = l2_normalize(x)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_allclose(y, [[0.6, 0.8], [0, 0]], atol=1e-7)
    assert x[0, 0] == 3


def test_default_chunk_size_is_tile_multiple():
    for n, nq, k, d in [(10**6, 10**5, 100, 384), (10**5, 10**4, 100, 50), (500, 10**6, 10, 8)]:
        c = default_chunk_size(n, nq, k, d)
        assert c % 4096 == 0 and 4096 <= c <= nq
        assert c == 4096 or c * 4 * n <= 256 * 2**20
    assert default_chunk_size(10**6, 10, 100, 384) == 10


@pytest.mark.parametrize("call, msg", [
    (lambda B, Q: exact_topk(B, Q, len(B)), "largest allowed is k=1999"),
    (lambda B, Q: exact_topk(B, Q, 0), "must be >= 1"),
    (lambda B, Q: exact_topk(B, Q, 2.5), "k must be an int"),
    (lambda B, Q: exact_topk(B, Q[:, :8], 5), "Dimension mismatch"),
    (lambda B, Q: exact_topk(B[0], Q, 5), "must be 2-D"),
    (lambda B, Q: exact_topk(B, Q[:0], 5), "empty"),
    (lambda B, Q: exact_topk(np.where(np.arange(2000)[:, None] == 5, np.inf, B), Q, 5), "first rows: [5]"),
    (lambda B, Q: exact_topk(B, np.full_like(Q, np.nan), 5), "150 row(s) with NaN or Inf"),
    (lambda B, Q: exact_topk(B, Q, 5, metric="cos"), "Unknown metric"),
    (lambda B, Q: exact_topk(B, Q, 5, exclude_ids=np.zeros(3, int)), "one id per query"),
    (lambda B, Q: exact_topk(B, Q, 5, exclude_ids=np.full(150, 2000)), "[-1, 1999]"),
    (lambda B, Q: teacher_topk(B, [], 5), "non-empty 1-D integer"),
    (lambda B, Q: teacher_topk(B, [0, -1], 5), "[0, 1999]"),
    (lambda B, Q: teacher_topk(B, [0, 1], 5, split="a/b"), "split must be"),
])
def test_errors(data, call, msg):
    with pytest.raises(ValueError) as e:
        call(*data)
    assert msg in str(e.value)


@pytest.fixture
def counted(monkeypatch):
    "Count how often teacher_topk really searches."
    calls = []
    real = knn._search
    def spy(*a, **kw):
        calls.append(a[2])
        return real(*a, **kw)
    monkeypatch.setattr(knn, "_search", spy)
    return calls


def test_teacher_topk_cache(tmp_path, data, counted):
    B, _ = data
    q = np.arange(0, 2000, 7)
    t = teacher_topk(B, q, k=20, split="val", cache_dir=tmp_path)
    assert isinstance(t, TopK) and not t.from_cache and counted == [20]
    s0, i0 = brute(B, B[q], 20, exclude=q)
    np.testing.assert_array_equal(t.ids, i0)
    np.testing.assert_allclose(t.scores, s0, atol=2e-4)
    m = t.manifest
    assert (m["k"], m["metric"], m["split"], m["n"], m["dim"], m["n_queries"]) == (20, "ip", "val", 2000, 32, len(q))
    assert {"vectors_hash", "query_hash", "result_hash", "created", "versions"} <= set(m)
    assert t.path.exists() and t.path.with_suffix(".json").exists()

    hit = teacher_topk(B, q, k=20, split="val", cache_dir=tmp_path)
    assert hit.from_cache and counted == [20]
    np.testing.assert_array_equal(hit.ids, t.ids)
    np.testing.assert_array_equal(hit.scores, t.scores)
    small = teacher_topk(B, q, k=7, split="val", cache_dir=tmp_path)
    assert small.from_cache and counted == [20] and small.ids.shape == (len(q), 7)
    np.testing.assert_array_equal(small.ids, t.ids[:, :7])

    # any change of the inputs is a miss
    B2 = B.copy(); B2[100, 3] *= 1.001
    assert not teacher_topk(B2, q, k=20, split="val", cache_dir=tmp_path).from_cache
    assert not teacher_topk(B, q[1:], k=20, split="val", cache_dir=tmp_path).from_cache
    assert not teacher_topk(B, q, k=20, split="test", cache_dir=tmp_path).from_cache
    assert not teacher_topk(B, q, k=20, split="val", metric="l2", cache_dir=tmp_path).from_cache
    assert not teacher_topk(B, q, k=20, split="val", exclude_self=False, cache_dir=tmp_path).from_cache
    assert len(counted) == 6
    # a larger k recomputes and replaces; afterwards the same k is a hit
    big = teacher_topk(B, q, k=40, split="val", cache_dir=tmp_path)
    assert not big.from_cache and counted[-1] == 40
    np.testing.assert_array_equal(big.ids[:, :20], t.ids)
    assert teacher_topk(B, q, k=40, split="val", cache_dir=tmp_path).from_cache
    assert teacher_topk(B, q, k=20, split="val", cache_dir=tmp_path).from_cache
    assert len(counted) == 7


def test_teacher_topk_default_dir_and_corrupt_cache(tmp_path, monkeypatch, data, counted):
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path))
    B, _ = data
    q = np.arange(50)
    t = teacher_topk(B, q, k=5)
    assert t.path.parent == tmp_path / "knn" and t.path.name.startswith("topk_test_")
    # the npz no longer matching its manifest is detected and recomputed
    np.savez(t.path, scores=t.scores, ids=t.ids[::-1])
    again = teacher_topk(B, q, k=5)
    assert not again.from_cache and len(counted) == 2
    np.testing.assert_array_equal(again.ids, t.ids)
    t.path.with_suffix(".json").write_text("{not json")
    assert not teacher_topk(B, q, k=5).from_cache and len(counted) == 3
    assert teacher_topk(B, q, k=5).from_cache
    assert not list((tmp_path / "knn").glob(".*.tmp"))


def test_teacher_topk_self_excluded(tmp_path, data):
    B, _ = data
    q = np.arange(0, 2000, 3)
    t = teacher_topk(B, q, k=10, cache_dir=tmp_path)
    assert not (t.ids == q[:, None]).any()
    t2 = teacher_topk(B, q, k=10, exclude_self=False, cache_dir=t.path.parent)
    np.testing.assert_array_equal(t2.ids[:, 0], q)  # each vector is its own nearest neighbor


def test_chunk_bounds_keep_faiss_on_blas():
    from ecd.knn import chunk_bounds
    import faiss
    floor = -(-faiss.cvar.distance_compute_blas_threshold // 50)
    for nq in (2560, 4097, 10_000, 12_345, 100_000):
        b = chunk_bounds(nq, 4096, 50)
        sizes = np.diff(b)
        assert b[0] == 0 and b[-1] == nq and sizes.max() <= 2 * 4096
        assert sizes.min() >= floor
    b = chunk_bounds(1000, 64, 50, blas_floor=False)
    assert np.diff(b).max() <= 64 and b[-1] == 1000
