"""ecd export (ecd.export) / compress / benchmark / e2e-small (ecd.deploy), and hdf5 truth (issue 15)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ENV = {"ECD_THREADS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A small synthetic run with baselines and a linear student (+PQ) evaluated; ECD_* dirs in a temp folder."
    root = tmp_path_factory.mktemp("export")
    old = {k: os.environ.get(k) for k in ("ECD_RESULTS_DIR", "ECD_DATA_DIR", *ENV)}
    os.environ.update(ECD_RESULTS_DIR=str(root / "results"), ECD_DATA_DIR=str(root / "data"), **ENV)
    from ecd.runs import prepare_run, run_baselines
    from ecd.student import eval_student, train_run
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((16, 24)).astype(np.float32)
    x = (centers[rng.integers(0, 16, 1600)] + 0.4 * rng.standard_normal((1600, 24))).astype(np.float32)
    np.save(root / "x.npy", x)
    prepare_run("t", f"npy:{root / 'x.npy'}", k=20)
    run_baselines("t", ["pq:4x16", "sq:8", "binary", "pca:8", "opq:4x16"])
    cfg = {"model": {"type": "linear", "out_dim": 8}, "train": {"steps": 10, "batch_size": 64, "warmup_steps": 2,
           "hard_negative": {"pool_l": 30, "tail_to": 30}}, "eval": {"every": 10, "png": False, "max_queries": 100}}
    train_run("t", cfg, verbose=False)
    eval_student("t", quantizers=("float32", "pq:4x16"), rerank_r=None)
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


FAISS_ONLY = textwrap.dedent("""
    import sys, json
    import faiss, numpy as np
    d = sys.argv[1]
    index = faiss.read_index(d + "/index.faiss")
    db, qidx, truth = np.load(d + "/../db.npy"), np.load(d + "/../qidx.npy"), np.load(d + "/../truth.npy")
    index.add(db)
    _, I = index.search(db[qidx], 11)
    hits = []
    for q, row, t in zip(qidx, I, truth):
        row = [i for i in row if i != q][:10]
        hits.append(len(set(row) & set(t[:10])) / 10)
    assert not any(m.startswith(("ecd", "torch")) for m in sys.modules), "only faiss and numpy may be imported"
    print(json.dumps({"recall@10": float(np.mean(hits))}))
""")


@pytest.mark.parametrize("rep", ["pq_m4_k16", "sq_b8", "binary", "pca_d8", "opq_m4_k16", "student_d8+pq_m4_k16", "student_d8+float32"])
def test_exported_index_in_plain_faiss_process(run, rep):
    from ecd.export import export_rep
    from ecd.runs import load_eval_data
    out = run / "exports" / rep.replace("+", "_")
    card = export_rep("t", rep, out)
    ev = load_eval_data("t", "test")
    np.save(run / "exports" / "db.npy", ev.database)
    np.save(run / "exports" / "qidx.npy", ev.query_idx)
    np.save(run / "exports" / "truth.npy", ev.truth_ids[:, :10])
    r = subprocess.run([sys.executable, "-c", FAISS_ONLY, str(out)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **ENV}, cwd=run)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["recall@10"]
    assert abs(got - card["row"]["recall@10"]) <= 0.005, (rep, got, card["row"]["recall@10"])
    c = json.loads((out / "card.json").read_text())
    assert c["row"]["run_id"] == "t" and c["row"]["split"] == "test" and c["bytes_per_vector"] > 0
    assert "recall@10" in (out / "README.md").read_text()


def test_compress_file_and_errors(run, capsys):
    from ecd.cli import main
    from ecd.export import load_compressor
    out = run / "exports" / "cmp_pq"
    assert main(["export", "--run-id", "t", "--rep", "pq:4x16", "--out", str(out)]) == 0
    x = np.load(run / "x.npy")
    assert main(["compress", "--model", str(out), "--input", f"npy:{run / 'x.npy'}", "--output",
                 str(run / "codes.npy"), "--batch-size", "300"]) == 0
    codes = np.load(run / "codes.npy")
    assert codes.dtype == np.uint8 and codes.shape == (1600, 2)
    np.testing.assert_array_equal(codes, load_compressor(out).compress(x))
    assert not list(run.glob(".codes.npy*"))                            # no temp file left
    np.save(run / "x20.npy", x[:, :20])
    assert main(["compress", "--model", str(out), "--input", f"npy:{run / 'x20.npy'}", "--output", str(run / "c.npy")]) == 2
    err = capsys.readouterr().err
    assert "20-dim vectors but pq_m4_k16 compresses 24-dim vectors" in err and "Traceback" not in err
    assert not (run / "c.npy").exists()
    assert main(["export", "--run-id", "t", "--rep", "nope", "--out", str(run / "x")]) == 2
    assert "has no row named 'nope'" in capsys.readouterr().err
    assert main(["compress", "--model", str(run), "--input", f"npy:{run / 'x.npy'}", "--output", str(run / "c.npy")]) == 2
    assert "not an ecd export" in capsys.readouterr().err


def test_hdf5_truth_and_benchmark(run, capsys):
    "An ann-benchmarks file: its neighbors are ecd's exact top-k for 'angular'; benchmark uses them as truth."
    import h5py
    from ecd.cli import main
    from ecd.data import ann_truth, load, read_ann_hdf5
    from ecd.deploy import benchmark
    from ecd.export import export_rep
    from ecd.knn import exact_topk
    rng = np.random.default_rng(3)
    train = rng.standard_normal((500, 24)).astype(np.float32)
    test = rng.standard_normal((30, 24)).astype(np.float32)
    # the file's neighbors, written as ann-benchmarks does: exact cosine neighbors (numpy, not ecd)
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = test / np.linalg.norm(test, axis=1, keepdims=True)
    nb = np.argsort(-(qn @ tn.T), axis=1, kind="stable")[:, :100]
    for dist in ("angular", "euclidean"):
        with h5py.File(run / f"{dist}.hdf5", "w") as f:
            f.attrs["distance"] = dist
            f["train"], f["test"], f["neighbors"] = train, test, nb.astype(np.int32)
            f["distances"] = np.zeros(nb.shape, np.float32)
    af = read_ann_hdf5(run / "angular.hdf5")
    assert af.distance == "angular" and af.train.shape == (500, 24) and af.neighbors.shape == (30, 100)
    np.testing.assert_array_equal(ann_truth(af, 10), exact_topk(train, test, 10)[1])   # cross-check vs ecd's own top-k
    assert ann_truth(read_ann_hdf5(run / "euclidean.hdf5"), 10) is None
    assert load(f"hdf5:{run / 'angular.hdf5'}#test").n == 30
    out = run / "exports" / "bench_sq"
    export_rep("t", "sq_b8", out)
    r = benchmark(out, f"hdf5:{run / 'angular.hdf5'}", max_items=None, n_queries=30)
    assert r["truth"].startswith("the file's neighbors") and r["n_db"] == 500 and r["n_queries"] == 30
    r2 = benchmark(out, f"hdf5:{run / 'euclidean.hdf5'}", max_items=None, n_queries=30)
    assert r2["truth"] == "ecd exact top-k" and abs(r2["recall@10"] - r["recall@10"]) < 1e-9
    assert r["recall@10"] > 0.8 and r["compress_vectors_per_s"] > 0 and r["peak_rss_mb"] > 0
    js = run / "bench.json"
    assert main(["benchmark", "--model", str(out), "--data", f"npy:{run / 'x.npy'}", "--max-items", "1000",
                 "--queries", "50", "--json", str(js)]) == 0
    table = capsys.readouterr().out
    assert "search_ms_per_query" in table and "recall@10" in table
    assert json.loads(js.read_text())["n_db"] == 1000


def test_mlp_student_export(run):
    "An MLP student: weights + numpy loader + the quantizer index; the numpy loader matches ecd's student."
    from ecd.deploy import compress_file
    from ecd.export import export_rep, load_compressor
    from ecd.models import load_npz
    from ecd.student import eval_student, train_run
    cfg = {"model": {"type": "mlp", "out_dim": 8, "hidden": 16}, "train": {"steps": 10, "batch_size": 64,
           "warmup_steps": 2, "hard_negative": {"pool_l": 30, "tail_to": 30}}, "eval": {"every": 10, "png": False,
           "max_queries": 100}}
    train_run("t", cfg, verbose=False, tag="mlp")
    eval_student("t", quantizers=("sq8",), rerank_r=None, tag="mlp")
    out = run / "exports" / "mlp"
    card = export_rep("t", "student+sq8", out, ckpt=str(run / "results" / "t" / "train" / "mlp" / "best.pt"))
    assert abs(card["measured"]["recall@10"] - card["row"]["recall@10"]) <= 0.005
    assert {"quantizer.faiss", "student.npz", "load_student.py"} <= set(os.listdir(out))
    x = np.load(run / "x.npy")[:200]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    code = f"import sys, numpy as np; sys.path.insert(0, {str(out)!r}); import load_student; " \
           f"np.save({str(run / 'mlp_np.npy')!r}, load_student.load()(np.load({str(run / 'x.npy')!r})[:200]))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **ENV})
    assert r.returncode == 0, r.stderr
    want = load_npz(out / "student.npz").transform(xn)
    np.testing.assert_allclose(np.load(run / "mlp_np.npy"), want, atol=1e-5)
    np.testing.assert_allclose(load_compressor(out).floats(x), want, atol=1e-6)
    res = compress_file(out, f"npy:{run / 'x.npy'}", run / "mlp_codes.npy", max_items=200)
    assert res["what"] == "codes" and np.load(run / "mlp_codes.npy").shape == (200, 8)


def test_sentence_transformers_folder(run, tmp_path):
    "A text: run (bundled MiniLM teacher): SentenceTransformer(DIR).encode == ecd compress within 1e-5."
    from ecd.deploy import compress_file
    from ecd.export import export_rep
    from ecd.runs import prepare_run
    from ecd.student import eval_student, train_run
    os.environ["HF_HUB_OFFLINE"] = "1"
    words = [f"{a} {b}" for a in ("red", "blue", "green", "small", "large", "old", "new", "fast", "slow", "warm")
             for b in ("cat", "dog", "car", "house", "tree", "river", "book", "city", "song", "phone", "road", "cup")]
    (tmp_path / "t.txt").write_text("\n".join(words) + "\n")
    prepare_run("txt", f"text:{tmp_path / 't.txt'}", k=10)
    cfg = {"model": {"type": "linear", "out_dim": 16}, "train": {"steps": 5, "batch_size": 32, "warmup_steps": 1,
           "hard_negative": {"pool_l": 20, "tail_to": 20}}, "eval": {"every": 5, "png": False, "max_queries": 50}}
    train_run("txt", cfg, verbose=False)
    eval_student("txt", quantizers=("float32",), rerank_r=None)
    out = tmp_path / "exp"
    card = export_rep("txt", "student_d16+float32", out)
    assert "sentence-transformers" in card["files"]
    compress_file(out, f"text:{tmp_path / 't.txt'}", tmp_path / "z.npy", what="floats")
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(out / "sentence-transformers"), device="cpu")
    emb = st.encode(words, convert_to_numpy=True)
    assert emb.shape == (len(words), 16)
    np.testing.assert_allclose(emb, np.load(tmp_path / "z.npy"), atol=1e-5)
    # an MLP student is appended as ecd's StudentModule (loaded with trust_remote_code=True)
    cfg["model"] = {"type": "mlp", "out_dim": 16, "hidden": 32}
    train_run("txt", cfg, verbose=False, tag="mlp")
    eval_student("txt", quantizers=("sq8",), rerank_r=None, tag="mlp")
    card = export_rep("txt", "student_d16+sq_b8", tmp_path / "mlp")
    assert "trust_remote_code=True" in card["how_to_load"]
    compress_file(tmp_path / "mlp", f"text:{tmp_path / 't.txt'}", tmp_path / "zm.npy", what="floats")
    st = SentenceTransformer(str(tmp_path / "mlp" / "sentence-transformers"), device="cpu", trust_remote_code=True)
    np.testing.assert_allclose(st.encode(words, convert_to_numpy=True), np.load(tmp_path / "zm.npy"), atol=1e-5)


def test_e2e_small_cli(tmp_path, monkeypatch, capsys):
    from ecd.cli import main
    monkeypatch.chdir(tmp_path)
    for k, v in {**ENV, "ECD_RESULTS_DIR": str(tmp_path / "results"), "ECD_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(k, v)
    assert main(["e2e-small", "--max-items", "1500", "--steps", "10"]) == 0
    out = capsys.readouterr().out
    res = json.loads(out[out.index("{"):])
    assert res["ok"] and abs(res["reloaded_recall@10"] - res["row_recall@10"]) <= 0.005
    assert (Path(res["out"]) / "index.faiss").exists()


def test_hdf5_run_rows_match_benchmark_on_the_file(tmp_path, monkeypatch):
    "A run prepared from an ann-benchmarks file is scored on the file's queries and neighbors, as benchmark is."
    import h5py
    from ecd.deploy import benchmark
    from ecd.export import export_rep
    from ecd.runs import prepare_run, run_baselines
    for k, v in {**ENV, "ECD_RESULTS_DIR": str(tmp_path / "results"), "ECD_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(k, v)
    rng = np.random.default_rng(5)
    c = rng.standard_normal((20, 16))
    tr = (c[rng.integers(0, 20, 1200)] + 0.5 * rng.standard_normal((1200, 16))).astype(np.float32)
    te = (c[rng.integers(0, 20, 60)] + 0.5 * rng.standard_normal((60, 16))).astype(np.float32)
    tn, qn = tr / np.linalg.norm(tr, axis=1, keepdims=True), te / np.linalg.norm(te, axis=1, keepdims=True)
    with h5py.File(tmp_path / "a.hdf5", "w") as f:
        f.attrs["distance"] = "angular"
        f["train"], f["test"] = tr, te
        f["neighbors"] = np.argsort(-(qn @ tn.T), axis=1, kind="stable")[:, :100].astype(np.int32)
    prepare_run("h", f"hdf5:{tmp_path / 'a.hdf5'}", k=20)
    df = run_baselines("h", ["float32", "sq:8"])   # sq8: few score ties (pq 4x16 codes tie, and faiss breaks ties by k)
    assert df.set_index("name").loc["float32", "recall@10"] > 0.999 and set(df["n_queries"]) == {60}
    card = export_rep("h", "sq_b8", tmp_path / "exp")
    r = benchmark(tmp_path / "exp", f"hdf5:{tmp_path / 'a.hdf5'}", max_items=None, n_queries=60)
    assert r["truth"].startswith("the file's neighbors")
    assert abs(r["recall@10"] - card["row"]["recall@10"]) <= 0.005, (r["recall@10"], card["row"]["recall@10"])


@pytest.mark.parametrize("spec", ["rq:4x4", "lsq:4x4", "opq_rq:4x4", "prq:2x2x4", "rabitq:1", "rabitq:4", "itq:16",
                                  "pqfs:16", "opqfs:8", "rqfs:6,beam=2", "lsqfs:6", "rabitqfs", "rq:3x8,norm=qint8,beam=2",
                                  "pqfs:16,refine=flat", "pq:8x16,refine=sq8,k_factor=4"])
def test_newer_codecs_as_faiss_index(spec):
    "The additive, RaBitQ, ITQ, fast-scan and two-stage codecs export too: the faiss index finds what the representation finds."
    from ecd.codecs import parse_rep
    from ecd.export import to_faiss_index
    rep = parse_rep(spec, seed=1)                  # a spec that stops parsing fails here, it is not skipped
    rng = np.random.default_rng(0)
    c = rng.standard_normal((12, 32)).astype(np.float32)
    x = ((c[rng.integers(0, 12, 2000)] + 0.5 * rng.standard_normal((2000, 32))) * 3).astype(np.float32)
    rep.fit(x)
    ix = to_faiss_index(rep)
    assert ix.ntotal == 0 and ix.sa_code_size() == rep.code_size
    rep.add(x)
    ix.add(x)
    sa, a = rep.search(x[:100], 10)
    sb, b = ix.search(x[:100], 10)
    if getattr(rep, "metric", "ip") == "l2":   # faiss returns L2 distances of the unit queries, ecd (1 - L2) / 2
        sb = (1 - sb) / 2
    same = np.mean([len(set(r) & set(s)) / 10 for r, s in zip(a, b)])
    assert same >= 0.99 or np.allclose(sa, sb, atol=1e-5), same   # 16-bit codes: equal scores may tie in any order


@pytest.mark.parametrize("spec", ["lrq:6x6", "lopq:8x64", "llsq:4x8", "lrq:8x4", "llsqfs:6"])
def test_learned_code_exports_encoder_and_decoder(spec):
    "lrq, lopq, llsq, llsqfs: codes from the encoder index, scored by the decoder index, rank as the representation (plain faiss)."
    import faiss
    from ecd.codecs import parse_rep
    from ecd.export import CodesFrom, add_codes, encoder_index, to_faiss_index
    rng = np.random.default_rng(0)
    c = rng.standard_normal((12, 32)).astype(np.float32)
    x = ((c[rng.integers(0, 12, 3000)] + 0.5 * rng.standard_normal((3000, 32))) * 3).astype(np.float32)
    rep = parse_rep(spec, steps=20, lr=2e-3, n_anchors=500, top_l=20).fit(x).add(x)
    enc, dec = encoder_index(rep), to_faiss_index(rep)
    np.testing.assert_array_equal(enc.sa_encode(x[:50]), rep.encode(x[:50]))     # the same codes as ecd
    ix = CodesFrom(enc, dec)
    ix.add(x)
    sa, a = rep.search(x[:100], 10)
    sb, b = ix.search(x[:100], 10)
    np.testing.assert_allclose(sa, sb, atol=1e-5)                                # look-up tables: the score itself
    assert np.mean([len(set(r) & set(s)) / 10 for r, s in zip(a, b)]) >= 0.99
    plain = faiss.deserialize_index(faiss.serialize_index(dec))                  # what faiss.read_index gives
    add_codes(plain, enc.sa_encode(x))
    assert plain.ntotal == 3000 and (plain.search(x[:100], 10)[1] == b).mean() >= 0.99
