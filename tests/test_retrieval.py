"""ecd.apps.retrieval / ecd.apps.retrieval_data from outside the notebooks: MS MARCO preparation on files in the
official formats, the CLI's one-line failure when the download cannot reach the network, evaluation rows through
the core (codecs, knn, metrics, store) on synthetic embeddings, typed configs, help texts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ecd.apps.retrieval_data import load_retrieval_data, prepare_msmarco

ROOT = Path(__file__).resolve().parents[1]


def _write_raw(raw: Path) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "collection.tsv").write_text("0\tFirst\x07 passage,  with a bell.\n1\tSecond\r passage\n2\tThird one\n",
                                        encoding="utf-8")
    (raw / "queries.train.tsv").write_text("10\twhat is first\n11\tunjudged query\n", encoding="utf-8")
    (raw / "queries.dev.tsv").write_text("20\t second\tthing \n", encoding="utf-8")
    (raw / "qrels.train.tsv").write_text("10\t0\t0\t1\n", encoding="utf-8")
    (raw / "qrels.dev.tsv").write_text("20\t0\t1\t1\n", encoding="utf-8")
    (raw / "top1000.dev").write_text("20\t1\tsecond thing\tSecond passage\n20\t2\tsecond thing\tThird one\n",
                                     encoding="utf-8")
    return raw


def test_prepare_msmarco_formats(tmp_path):
    out = prepare_msmarco(_write_raw(tmp_path / "raw"), tmp_path / "out", build_sqlite=True)
    rows = [json.loads(l) for l in (out / "passages.jsonl").read_text().splitlines()]
    assert rows == [{"docid": 0, "text": "First passage, with a bell."}, {"docid": 1, "text": "Second passage"},
                    {"docid": 2, "text": "Third one"}]
    assert [json.loads(l) for l in (out / "queries_train.jsonl").read_text().splitlines()] == [
        {"qid": "10", "text": "what is first"}]                      # the unjudged query is dropped
    assert (out / "queries_dev.jsonl").read_text() == '{"qid": "20", "text": "second thing"}\n'
    assert (out / "qrels_train.tsv").read_text() == "10\t0\t1\n"
    assert (out / "qrels_dev.tsv").read_text() == "20\t1\t1\n"
    assert (out / "candidates_dev.tsv").read_text() == "20\t1\n20\t2\n"
    data = load_retrieval_data(out)
    assert data.passages.texts([2, 0]) == ["Third one", "First passage, with a bell."]
    data.passages.close()


def test_cli_offline_download_is_one_line(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("run_id: offline_test\ndata:\n  dataset: msmarco\n"
                   "  msmarco:\n    base_url: http://127.0.0.1:9/msmarcoranking\n")
    env = {**os.environ, "ECD_DATA_DIR": str(tmp_path / "data"), "ECD_RESULTS_DIR": str(tmp_path / "results")}
    r = subprocess.run([sys.executable, "-m", "ecd.cli", "retrieval", "data", "--config", str(cfg)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "http://127.0.0.1:9/msmarcoranking/collectionandqueries.tar.gz" in r.stderr and "manually" in r.stderr


def _toy_data(tmp_path):
    from ecd.apps.retrieval_data import make_toy
    return load_retrieval_data(make_toy(tmp_path / "toy", n_passages=120, n_train_queries=8, n_dev_queries=30,
                                        n_topics=6))


def test_evaluate_model_rows_through_the_core(tmp_path, monkeypatch):
    "Synthetic embeddings (no encoder): codec rows per dim, vs_qrels and vs_teacher scopes, standard columns, store."
    import numpy as np
    from ecd.apps.retrieval import EvalConfig, evaluate_model
    from ecd.store import read_metrics, write_metrics
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    data = _toy_data(tmp_path)
    qids, _, qrels = data.split("dev")
    rng = np.random.default_rng(0)
    P = rng.normal(size=(len(data.passages), 32)).astype(np.float32)
    rel_rows = [int(np.flatnonzero(data.passages.docids == next(iter(qrels[q])))[0]) for q in qids]
    Q = P[rel_rows] + 0.3 * rng.normal(size=(len(qids), 32)).astype(np.float32)   # each query near its passage
    e = EvalConfig(dims=[32, 8], ks=[5, 20], teacher_k=20, compression=["sq8", "binary"], compression_models=["matryoshka"])
    df = pd.DataFrame(evaluate_model("matryoshka", P, Q, data, qids, qrels, e, seed=0))
    assert set(df["mode"]) == {"matryoshka", "matryoshka+pca", "matryoshka+sq", "matryoshka+binary"}
    q = df[df.scope == "vs_qrels"].set_index("name")
    assert q.loc["matryoshka_d32", "mrr@10"] > 0.8                  # a near copy of its passage is found first
    assert q.loc["matryoshka_d32", "bytes_per_vector"] == 128 and q.loc["matryoshka_d8+sq_b8", "bytes_per_vector"] == 8
    t = df[df.scope == "vs_teacher"].set_index("name")
    assert t.loc["matryoshka_d32", "recall@10"] == 1.0 and t.loc["matryoshka_d8", "recall@10"] < 1.0
    assert "matryoshka+pca_d32" not in q.index                       # PCA to the full dim is the prefix row
    write_metrics("r", df)
    assert len(read_metrics("r")) == len(df)
    write_metrics("r", df)                                            # a rerun replaces its own rows
    assert len(read_metrics("r")) == len(df)


def test_shipped_configs_are_typed():
    from ecd.apps.retrieval import RetrievalConfig, load_retrieval_config
    for p in sorted((ROOT / "configs/retrieval").glob("*.yaml")):
        cfg = load_retrieval_config(p)
        assert isinstance(cfg, RetrievalConfig) and cfg.train.loss in ("mnrl", "cached_mnrl")


def test_help_names_features_not_history(capsys):
    import pytest
    from ecd.cli import main
    with pytest.raises(SystemExit):
        main(["retrieval", "all", "--help"])
    out = capsys.readouterr().out
    assert "seed 00" not in out.lower() and "--override" in out and "report.md" in out
