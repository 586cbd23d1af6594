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
    (8, 256, 8, 8),      # the PQ/SQ sweep's case: 128-d, 8 chunks, 256 clusters -> 8 bytes, 64x
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


# --- the strongest classic codecs: RQ, LSQ, PRQ, PLSQ, OPQ+RQ, RaBitQ, ITQ ----------------

import faiss  # noqa: E402

from ecd.codecs import ITQ, LSQ, OPQRQ, PLSQ, PRQ, RQ, RaBitQ, SPEC_FORMS  # noqa: E402
from ecd.knn import l2_normalize  # noqa: E402

_IP, _LUT = faiss.METRIC_INNER_PRODUCT, faiss.AdditiveQuantizer.ST_LUT_nonorm


def _direct(index, xb, xq, k=10):
    index.train(l2_normalize(xb))
    index.add(l2_normalize(xb))
    return index.search(l2_normalize(xq), k)


@pytest.mark.parametrize("spec,nbytes,name", [
    ("rq:8x4,beam=2", 4, "rq_m8_b4_beam2"), ("rq:5x4,beam=1", 3, "rq_m5_b4_beam1"),
    ("lsq:4x4", 2, "lsq_m4_b4"), ("prq:2x4x4,beam=2", 4, "prq_s2_m4_b4_beam2"), ("plsq:2x2x6", 3, "plsq_s2_m2_b6"),
    ("opq_rq:4x6,beam=2,niter=2", 3, "opq_rq_m4_b6_beam2"), ("rabitq:1", 8 + 8, "rabitq_b1"),
    ("rabitq:3,qb=8", 8 + 12 + 16 + 8, "rabitq_b3_qb8"), ("itq:20", 3, "itq_d20"),
])
def test_new_codecs_bytes_and_round_trip(data, spec, nbytes, name):
    xb, xq = data
    r = parse_rep(spec, **({"max_train": 500} if spec.split(":")[0] in ("lsq", "plsq") else {})).fit(xb).add(xb)
    assert r.name == name and parse_rep(r.name).name == name
    assert r.bytes_per_vector == nbytes
    if hasattr(r.index, "sa_code_size"):
        assert r.index.sa_code_size() == nbytes == r.code_size  # everything faiss stores per vector
    codes = r.encode(xq)
    assert codes.dtype == np.uint8 and codes.shape == (len(xq), nbytes)
    rec = r.decode(codes)
    assert rec.shape == xq.shape and np.isfinite(rec).all()
    if hasattr(r.index, "sa_decode"):
        np.testing.assert_allclose(rec, r.index.sa_decode(codes), atol=1e-6)
    s, i = r.search(xq, 5)
    assert i.shape == (len(xq), 5) and (np.diff(s, axis=1) <= 1e-5).all()
    assert r.describe()["bytes_per_vector"] == nbytes


def _faiss_rq(metric, *args):
    ref = faiss.IndexResidualQuantizer(64, 6, 4, *args) if args else faiss.IndexResidualQuantizer(64, 6, 4)
    ref.rq.max_beam_size, ref.rq.cp.seed, ref.rq.cp.min_points_per_centroid = 3, 0, 1
    ref.rq.use_beam_LUT = 1
    return ref


def _same_ranking(ids, ref, scores, tol=1e-4):
    "ids equal to the reference wherever the score is not within `tol` of a neighbour's (float-rounding ties)."
    gap = np.minimum(np.abs(np.diff(scores, axis=1, prepend=np.inf)), np.abs(np.diff(scores, axis=1, append=-np.inf)))
    return bool(((ids == ref) | (gap < tol))[:, :-1].all())   # the last place can tie with the unseen k+1-th


def test_rq_and_lsq_search_is_faiss(data):
    xb, xq = data
    r = RQ(6, 4, beam=3).fit(xb).add(xb)                       # default metric: L2, as faiss's own default
    d, i = _direct(_faiss_rq("l2"), xb, xq)
    ds, is_ = r.search(xq, 10)
    np.testing.assert_allclose(ds, (1 - d) / 2, atol=1e-5)     # score <q, x_hat> - ||x_hat||^2 / 2 of a unit query
    assert _same_ranking(is_, i, ds)
    d2, i2 = r.index.search(l2_normalize(xq), 10)                # the index itself (ST_norm_from_LUT) ranks the same
    assert _same_ranking(i2, i, ds)
    r_ip = RQ(6, 4, beam=3, metric="ip").fit(xb).add(xb)
    assert r_ip.name == "rq_m6_b4_beam3_ip" and parse_rep(r_ip.name).metric == "ip"
    d, i = _direct(_faiss_rq("ip", _IP, _LUT), xb, xq)
    ds, is_ = r_ip.search(xq, 10)
    assert (is_ == i).all()
    np.testing.assert_allclose(ds, d, atol=1e-5)
    for metric, args in (("l2", ()), ("ip", (_IP, _LUT))):
        lsq = LSQ(4, 4, max_train=None, metric=metric).fit(xb).add(xb)
        ref = faiss.IndexLocalSearchQuantizer(64, 4, 4, *args)
        ref.lsq.random_seed = 0
        s_, i_ = lsq.search(xq, 10)
        d_, ref_i = _direct(ref, xb, xq)
        np.testing.assert_allclose(s_, (1 - d_) / 2 if metric == "l2" else d_, atol=1e-5)  # LSQ codes share values:
        assert (i_[:, 0] == ref_i[:, 0]).mean() > 0.5                                     # ties order either way


def test_pq_metric_is_faiss(data):
    xb, xq = data
    for metric, fm in (("l2", faiss.METRIC_L2), ("ip", faiss.METRIC_INNER_PRODUCT)):
        r = parse_rep(f"pq:8x16,metric={metric}").fit(xb).add(xb)
        ref = faiss.IndexPQ(64, 8, 4, fm)
        ref.pq.cp.seed, ref.pq.cp.min_points_per_centroid = 0, 1
        s_, i_ = r.search(xq, 10)
        assert _same_ranking(i_, _direct(ref, xb, xq)[1], s_)
    test_l2 = parse_rep("pq:8x16").fit(xb).add(xb)
    xa, kind = test_l2.space(xb, query=False); qa, _ = test_l2.space(xq)
    assert kind == "ip" and xa.shape == (len(xb), 65)           # [x_hat, -||x_hat||^2 / 2] against [q, 1]
    s, i = test_l2.search(xq, 5)
    np.testing.assert_allclose(np.sort(qa @ xa.T, 1)[:, ::-1][:, :5], s, atol=1e-5)
    with pytest.raises(ValueError, match="'l2'"):
        parse_rep("rq:4x4,metric=cosine")


def test_rabitq_search_is_faiss(data):
    xb, xq = data
    r = RaBitQ(2, qb=6, rotate=True, seed=3).fit(xb).add(xb)
    rr = faiss.RandomRotationMatrix(64, 64)
    rr.init(3)
    rbq = faiss.IndexRaBitQ(64, _IP, 2)
    rbq.qb = 6
    assert (r.search(xq, 10)[1] == _direct(faiss.IndexPreTransform(rr, rbq), xb, xq)[1]).all()
    plain = RaBitQ(1).fit(xb).add(xb)
    assert (plain.search(xq, 10)[1] == _direct(faiss.IndexRaBitQ(64, _IP, 1), xb, xq)[1]).all()


def test_rq_beats_pq_at_the_same_bits(data):
    xb, xq = data
    assert RQ(8, 4, beam=2).fit(xb).distortion(xq) < PQ(8, 16).fit(xb).distortion(xq)


def test_max_train_sample(data):
    xb, _ = data
    r = RQ(4, 4, beam=1, max_train=300).fit(xb)
    assert r.params["n_train"] == 300 and r.params["max_train"] == 300
    assert RQ(4, 4, beam=1, max_train=None).fit(xb).params["n_train"] == len(xb)


def test_knobs_in_specs():
    assert parse_rep("rq:16x8,beam=32,max_train=5000").params["max_train"] == 5000
    assert parse_rep("rq_m16_b8_beam32").beam == 32
    assert parse_rep("rabitq_b1_qb8_rot").params["rotate"] is True and parse_rep("rabitq:1").params["rotate"] is False
    assert parse_rep("rq:16").nbits == 8 and parse_rep("prq:2x8").num_codebooks == 8
    assert parse_rep("opq:16x256,niter=5").niter == 5
    assert any("rq:MxB" in f for f in SPEC_FORMS) and any("rabitq" in f for f in SPEC_FORMS)


@pytest.mark.parametrize("spec,message", [
    ("rq:7x9", "use an integer in 1..8"), ("lsq:16x0", "use an integer in 1..8"), ("rq:0x8", "1..256"),
    ("rabitq:0", "use an integer in 1..8"), ("rabitq:9", "use an integer in 1..8"), ("rabitq:1,qb=9", "0..8"),
    ("rq:16x8,beam=0", "e.g. beam=16"), ("rq:16x8,bem=4", "valid: ['beam'"), ("rq:16x8,beam", "name=value"),
    ("itq:0", "itq dim"), ("prq:0x8x8", "splits S"), ("rq:16x8,max_train=3", "use an integer in >= 256"),
])
def test_bad_new_specs(spec, message):
    with pytest.raises(ValueError, match=re_escape(message)):
        parse_rep(spec)


def re_escape(s):
    import re
    return re.escape(s)


def test_bad_new_fits(data):
    xb, _ = data
    with pytest.raises(ValueError, match=r"not divisible by num_splits=3; use one of \[1, 2, 4, 8, 16, 32, 64\]"):
        PRQ(3, 4, 6).fit(xb)
    with pytest.raises(ValueError, match="not divisible by num_splits=5"):
        PLSQ(5, 2, 4).fit(xb)
    with pytest.raises(ValueError, match="use dim <= 64"):
        ITQ(65).fit(xb)
    with pytest.raises(ValueError, match="100 training vectors for 256 entries per codebook"):
        RQ(4, 8).fit(xb[:100])
    with pytest.raises(ValueError, match="opq_chunks=7"):
        OPQRQ(4, 4, opq_chunks=7).fit(xb)


def test_default_sweep_grid_specs_parse():
    """Every baseline combo of configs/sweep/default.yaml is a valid representation spec covering 8..64 B."""
    from pathlib import Path
    from ecd.sweep import baseline_spec, expand_grid, load_sweep_config
    s = load_sweep_config(Path(__file__).resolve().parent.parent / "configs/sweep/default.yaml").sweep
    combos = [c for c in expand_grid(s.grid, s.fixed) if c["mode"] != "student"]
    names = {parse_rep(baseline_spec(c)).name for c in combos}
    for b in (8, 16, 32, 48, 64):
        assert {f"rq_m{b}_b8", f"pq_m{b}_k256", f"opq_m{b}_k256", f"pca_sq8_d{b}"} <= names
