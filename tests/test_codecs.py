"""ecd.codecs: byte accounting, spec parsing and bad input (fast, synthetic data)."""
import math
import warnings

import numpy as np
import pytest

from ecd.codecs import (OPQ, PQ, SQ, Binary, Float32, FP16, TransformThen, make_representation, parse_rep)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 64))
    x = (centers[rng.integers(0, 20, 1100)] + 0.3 * rng.standard_normal((1100, 64))).astype(np.float32)
    return x[:1000], x[1000:]


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*faiss recommends")
        yield


def fit_rows(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


# --- byte accounting --------------------------------------------------------------------

@pytest.mark.parametrize("chunks,clusters,nbytes,code_size", [
    (8, 256, 8, 8),      # seed 002: 128-d, 8 chunks, 256 clusters -> 8 bytes, 64x
    (4, 128, 4, 4),      # 128 clusters: still one byte per chunk (faiss packs 28 bits in 4)
    (8, 512, 16, 9),     # > 256 clusters: two bytes per chunk (faiss packs 72 bits in 9)
    (16, 256, 16, 16),
])
def test_pq_bytes(chunks, clusters, nbytes, code_size):
    r = PQ(chunks, clusters).fit(fit_rows(max(clusters, 300), 128))
    assert r.bytes_per_vector == nbytes
    assert r.code_size == code_size
    assert r.compression_ratio == pytest.approx(128 * 4 / nbytes)
    assert r.rep_dim == 128
    d = r.describe()
    assert d["bytes_per_vector"] == nbytes and d["code_size"] == code_size and d["name"] == f"pq_m{chunks}_k{clusters}"


def test_seed_example_ratio():
    r = PQ(8, 256).fit(fit_rows(300, 128))
    assert (r.bytes_per_vector, r.compression_ratio) == (8, 64.0)


@pytest.mark.parametrize("bits,nbytes", [(4, 25), (6, 38), (8, 50), (16, 100)])
def test_sq_bytes(bits, nbytes):
    r = SQ(bits).fit(fit_rows(20, 50))
    assert r.bytes_per_vector == nbytes == r.code_size
    assert r.encode(fit_rows(3, 50)).shape == (3, nbytes)


@pytest.mark.parametrize("spec,d,nbytes,rep_dim", [
    ("float32", 64, 256, 64), ("fp16", 64, 128, 64), ("binary", 64, 8, 64), ("binary", 50, 7, 50),
    ("trunc:16", 64, 64, 16), ("pca:16", 64, 64, 16), ("rp:16", 64, 64, 16), ("pca_sq8:16", 64, 16, 16),
])
def test_other_bytes(spec, d, nbytes, rep_dim):
    r = parse_rep(spec).fit(fit_rows(100, d))
    assert (r.bytes_per_vector, r.rep_dim) == (nbytes, rep_dim)
    assert r.compression_ratio == pytest.approx(4 * d / nbytes)


# --- behaviour --------------------------------------------------------------------------

def test_float32_is_exact(data):
    xb, xq = data
    r = Float32().fit(xb).add(xb)
    b = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    q = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    truth = np.argsort(-(q @ b.T), axis=1)[:, :5]
    s, i = r.search(xq, 5)
    assert (i == truth).all()
    assert s.dtype == np.float32 and i.dtype == np.int64


def test_same_seed_same_codes(data):
    xb, xq = data
    for make in (lambda s: PQ(8, 64, seed=s), lambda s: OPQ(8, 64, niter=2, seed=s),
                 lambda s: parse_rep("rp:16", seed=s)):
        assert np.array_equal(make(1).fit(xb).encode(xq), make(1).fit(xb).encode(xq))


def test_student_then_quantizer(data):
    xb, xq = data
    w = np.linalg.qr(np.random.default_rng(2).standard_normal((64, 24)))[0].astype(np.float32)
    r = TransformThen(lambda x: x @ w, "sq8", name="student").fit(xb).add(xb)
    assert (r.name, r.bytes_per_vector, r.rep_dim) == ("student+sq_b8", 24, 24)
    assert r.search(xq, 3)[1].shape == (len(xq), 3)
    assert not r.decodable and math.isnan(r.distortion(xq))


def test_distortion_orders(data):
    xb, xq = data
    d = {s: parse_rep(s).fit(xb).distortion(xq) for s in ["float32", "fp16", "sq8", "sq4"]}
    assert d["float32"] == 0 and d["fp16"] < d["sq8"] < d["sq4"]


# --- bad input --------------------------------------------------------------------------

def test_bad_specs():
    with pytest.raises(ValueError, match="use one of: float32"):
        parse_rep("lsh:8")
    with pytest.raises(ValueError, match="Unknown representation mode 'lsh'"):
        make_representation("lsh")
    with pytest.raises(ValueError, match="valid:"):
        make_representation("sq", bit=8)
    with pytest.raises(ValueError, match="needs dim="):
        make_representation("trunc")
    with pytest.raises(ValueError, match=r"use one of \[4, 6, 8, 16\]"):
        SQ(3)


def test_bad_pq():
    with pytest.raises(ValueError, match="use 256 or 512"):
        PQ(8, 300)
    with pytest.raises(ValueError, match="power of 2 between 2 and 65536"):
        PQ(8, 100000)
    with pytest.raises(ValueError, match=r"not divisible by num_chunks=7; use one of \[1, 2, 4, 8, 16, 32, 64\]"):
        PQ(7, 16).fit(fit_rows(100, 64))
    with pytest.raises(ValueError, match="50 training vectors for 256 clusters"):
        PQ(8, 256).fit(fit_rows(50, 64))
    with pytest.warns(UserWarning, match="faiss recommends at least 2496"):
        PQ(8, 64).fit(fit_rows(100, 64))


def test_bad_dims_and_lifecycle(data):
    xb, xq = data
    r = SQ(8)
    with pytest.raises(ValueError, match="call fit"):
        r.search(xq, 5)
    r.fit(xb)
    with pytest.raises(ValueError, match="database is empty"):
        r.search(xq, 5)
    with pytest.raises(ValueError, match="have 32 dims but the representation was fit on 64-dim"):
        r.add(xb[:, :32])
    r.add(xb[:20])
    with pytest.raises(ValueError, match="k=21 but the database holds 20"):
        r.search(xq, 21)
    with pytest.raises(ValueError, match="queries have 63 dims"):
        r.search(xq[:, :63], 5)
    bad = xq.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf in 1 row\(s\) \(first: \[3\]\)"):
        r.search(bad, 5)
    with pytest.raises(ValueError, match="reshape"):
        r.search(xq[0], 5)
    with pytest.raises(ValueError, match="use dim <= 64"):
        parse_rep("pca:65").fit(xb)
    with pytest.raises(ValueError, match="use dim <= 64"):
        parse_rep("trunc:100").fit(xb)
    with pytest.raises(ValueError, match="use dim <= 64"):
        parse_rep("rp:65").fit(xb)


def test_binary_and_decode_shapes(data):
    xb, xq = data
    r = Binary().fit(xb).add(xb)
    s, _ = r.search(xq, 4)
    assert (s <= 64).all() and (np.diff(s, axis=1) <= 0).all()
    with pytest.raises(ValueError, match="uint8 of shape"):
        r.decode(np.zeros((2, 9), dtype=np.uint8))
    assert FP16().fit(xb).decode(FP16().fit(xb).encode(xq)).shape == xq.shape
