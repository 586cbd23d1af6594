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


# ---- sharded search: pieces, merge, resume, Dask ----------------------------------------
from ecd.knn import default_shards, shard_bounds, sharded_topk


def test_default_shards_and_bounds():
    assert default_shards(1000, 32) == 1
    assert default_shards(1_000_000, 384) == 3          # 1.46 GiB / 512 MiB
    assert default_shards(1_000_000, 384, shard_mb=2048) == 1
    b = shard_bounds(10, 3)
    assert b[0] == 0 and b[-1] == 10 and np.diff(b).min() >= 3


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("shards, block_rows", [(1, None), (3, 50), (17, 7), (400, None)])
def test_sharded_equals_single_index(data, metric, shards, block_rows):
    B, Q = data
    s0, i0 = exact_topk(B, Q, 25, metric=metric)
    s, i = sharded_topk(B, Q, 25, metric=metric, shards=shards, block_rows=block_rows)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_allclose(s, s0, atol=1e-5)
    _, ib = brute(B, Q, 25, metric)
    np.testing.assert_array_equal(i, ib)


def test_sharded_exclude_self_and_rows(data):
    B, _ = data
    q = np.random.default_rng(3).choice(len(B), 120, replace=False)
    i0 = exact_topk(B, B[q], 20, exclude_ids=q)[1]
    np.testing.assert_array_equal(sharded_topk(B, k=20, query_idx=q, exclude_ids=q, shards=6, block_rows=33)[1], i0)
    np.testing.assert_array_equal(sharded_topk(B, B[q], 20, exclude_ids=q, shards=6)[1], i0)


def test_sharded_ties_only_differ_among_equal_scores():
    "Duplicated rows make exact ties: ids may swap only inside a group of equal scores."
    rng = np.random.default_rng(5)
    B = rng.normal(size=(400, 8)).astype(np.float32)
    B = np.vstack([B, B[:100]])                       # 100 exact duplicates
    Q = rng.normal(size=(30, 8)).astype(np.float32)
    s0, i0 = exact_topk(B, Q, 12)
    s1, i1 = sharded_topk(B, Q, 12, shards=5)
    np.testing.assert_allclose(s1, s0, atol=1e-6)
    for r in range(len(Q)):
        for val in np.unique(s0[r]):
            # same multiset of score values; ids equal as sets within each tie group (up to the cut)
            g0, g1 = set(i0[r][s0[r] == val] % 400), set(i1[r][s1[r] == val] % 400)
            assert g0 == g1 or (val == s0[r, -1])


def test_sharded_resume_computes_only_missing(tmp_path, data, monkeypatch):
    B, Q = data
    real = knn._piece
    calls = []
    def stop_after(n):
        def f(*a):
            if len(calls) == n:
                raise KeyboardInterrupt
            calls.append((a[1], a[2]))
            return real(*a)
        return f
    monkeypatch.setattr(knn, "_piece", stop_after(4))
    with pytest.raises(KeyboardInterrupt):
        sharded_topk(B, Q, 10, shards=5, block_rows=60, cache_dir=tmp_path)   # 5 x 3 = 15 pieces
    assert len(calls) == 4 and len(list(tmp_path.glob("pieces_*/*.npz"))) == 4
    calls.clear()
    monkeypatch.setattr(knn, "_piece", stop_after(10**9))
    s, i, st = sharded_topk(B, Q, 10, shards=5, block_rows=60, cache_dir=tmp_path, return_stats=True)
    assert len(calls) == 11 and (st["computed"], st["reused"], st["pieces"]) == (11, 4, 15)
    np.testing.assert_array_equal(i, exact_topk(B, Q, 10)[1])
    calls.clear()
    _, i2, st2 = sharded_topk(B, Q, 10, shards=5, block_rows=60, cache_dir=tmp_path, return_stats=True)
    assert calls == [] and st2["reused"] == 15
    np.testing.assert_array_equal(i2, i)
    # other inputs use another folder; a damaged piece is recomputed alone
    sharded_topk(B, Q, 11, shards=5, block_rows=60, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pieces_*"))) == 2
    piece = sorted(tmp_path.glob("pieces_*/s0001_b0002.npz"))[0]
    piece.write_bytes(b"not a zip")
    calls.clear()
    _, i3 = sharded_topk(B, Q, 10, shards=5, block_rows=60, cache_dir=tmp_path)
    np.testing.assert_array_equal(i3, i)
    assert len(calls) <= 1


_KILL_SCRIPT = """
import sys, time, numpy as np, ecd.knn as knn
real = knn._piece
def slow(*a):
    time.sleep(0.4)
    return real(*a)
knn._piece = slow
B = np.load(sys.argv[1])
knn.sharded_topk(B, B[:200], 10, shards=12, cache_dir=sys.argv[2])
print("finished")
"""


def test_sharded_killed_run_resumes(tmp_path, data, monkeypatch):
    "kill -9 a sharded run after a few pieces; the rerun computes only the missing ones."
    import os
    import signal
    import subprocess
    import sys
    import time
    B, _ = data
    np.save(tmp_path / "B.npy", B)
    (tmp_path / "kill.py").write_text(_KILL_SCRIPT)
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, str(tmp_path / "kill.py"), str(tmp_path / "B.npy"), str(cache)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while len(list(cache.glob("pieces_*/*.npz"))) < 3 and time.time() - t0 < 60 and p.poll() is None:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    done = len(list(cache.glob("pieces_*/*.npz")))
    assert 3 <= done < 12, (done, p.stderr.read().decode()[-500:])
    calls = []
    real = knn._piece
    monkeypatch.setattr(knn, "_piece", lambda *a: (calls.append(a[1]), real(*a))[1])
    s, i, st = sharded_topk(B, B[:200], 10, shards=12, cache_dir=cache, return_stats=True)
    assert len(calls) == 12 - done and st["reused"] == done and st["computed"] == 12 - done
    np.testing.assert_array_equal(i, exact_topk(B, B[:200], 10)[1])


def test_sharded_on_dask_localcluster(tmp_path, data):
    B, Q = data
    np.save(tmp_path / "B.npy", B)
    mm = np.load(tmp_path / "B.npy", mmap_mode="r")
    q = np.arange(0, 2000, 9)
    i0 = exact_topk(B, B[q], 15, exclude_ids=q)[1]
    s, i, st = sharded_topk(mm, k=15, query_idx=q, exclude_ids=q, shards=4, executor="dask", workers=2,
                            processes=False, cache_dir=tmp_path / "c", return_stats=True)
    np.testing.assert_array_equal(i, i0)
    assert st["workers_read_file"] and st["executor"] == "dask" and st["computed"] == 4
    _, i2 = sharded_topk(B, Q, 15, shards=3, executor="dask", workers=2, processes=False)   # scattered arrays
    np.testing.assert_array_equal(i2, exact_topk(B, Q, 15)[1])
    # a Client made by the caller is used as given (and not closed)
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c, Client(c) as cl:
        _, i3 = sharded_topk(B, Q, 15, shards=2, client=cl)
        np.testing.assert_array_equal(i3, i2)
        assert cl.status == "running"


def test_sharded_errors(data, monkeypatch):
    B, Q = data
    monkeypatch.setattr(knn, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ValueError, match="Unknown executor"):
        sharded_topk(B, Q, 5, executor="ray")
    with pytest.raises(ValueError, match="shards must be a positive int"):
        sharded_topk(B, Q, 5, shards=0)
    with pytest.raises(ValueError, match="block_rows must be a positive int"):
        sharded_topk(B, Q, 5, block_rows=-1)
    with pytest.raises(ValueError, match="exactly one of"):
        sharded_topk(B, k=5)
    with pytest.raises(ValueError, match="no Dask scheduler answers"):
        sharded_topk(B, Q, 5, scheduler="tcp://127.0.0.1:9")


def test_teacher_topk_sharded_same_as_single(tmp_path, data):
    B, _ = data
    np.save(tmp_path / "B.npy", B)
    q = np.arange(0, 2000, 11)
    t1 = teacher_topk(B, q, k=20, cache_dir=tmp_path / "a")
    t2 = teacher_topk(tmp_path / "B.npy", q, k=20, cache_dir=tmp_path / "b", shards=5)
    np.testing.assert_array_equal(t2.ids, t1.ids)
    np.testing.assert_allclose(t2.scores, t1.scores, atol=1e-5)
    assert t2.manifest["computed_by"]["shards"] == 5 and t1.manifest["computed_by"]["shards"] == 1
    assert t2.manifest["vectors_hash"] == t1.manifest["vectors_hash"]
    assert not list((tmp_path / "b").glob("*.shards"))        # pieces removed once the result is written
    t3 = teacher_topk(B, q, k=20, cache_dir=tmp_path / "c", executor="dask", workers=2, processes=False, shards=2)
    np.testing.assert_array_equal(t3.ids, t1.ids)
