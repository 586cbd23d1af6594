"Tests of ecd.apps.cascade: corpus streaming with Common Corpus filters, target dims, losses, direct/cascade training, files, CLI."
import numpy as np
import pandas as pd
import pytest
import torch

from ecd.apps.cascade import (COMMON_CORPUS_COLUMNS, Cascade, CascadeConfig, CascadeOOMError, HubUnreachableError,
                         CorpusSource, _hub_error, cascade_loss, check_target_dims, demo_frame,
                         load_corpus, oom_guard, parse_corpus_source, train_cascade, write_demo_corpus)
from ecd.core import save_parquet


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _results_dir(tmp_path, monkeypatch):
    "Store rows of every test go to a scratch results folder."
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))


@pytest.fixture
def cc_parquet(tmp_path):
    "A local parquet in Common Corpus's schema with mixed collections, languages and empty texts."
    n = 160
    df = demo_frame(n)
    df["collection"] = np.where(np.arange(n) % 3 == 0, "Open Science", "OpenCulture")
    df["language"] = np.where(np.arange(n) % 4 == 0, "French", "English")
    df.loc[df.index % 5 == 0, "text"] = ""
    save_parquet(tmp_path / "cc" / "part-0.parquet", df)
    return tmp_path / "cc", df


def test_demo_frame_has_common_corpus_schema():
    df = demo_frame(20)
    assert list(df.columns) == list(COMMON_CORPUS_COLUMNS)
    assert len(df) == 20 and df.identifier.is_unique


def test_parse_corpus_source(tmp_path, cc_parquet):
    d, _ = cc_parquet
    t = write_demo_corpus(tmp_path / "demo.txt", 5)
    assert parse_corpus_source(f"text:{t}").kind == "text"
    assert parse_corpus_source(str(t)).kind == "text"
    assert parse_corpus_source(str(d)).kind == "parquet"
    assert parse_corpus_source(f"parquet:{d}/*.parquet").data_files == [str((d / "part-0.parquet").resolve())]
    assert parse_corpus_source("hf:PleIAs/common_corpus") == CorpusSource("hf", "PleIAs/common_corpus")
    with pytest.raises(ValueError, match="no such file"):
        parse_corpus_source(f"jsonl:{tmp_path}/none.jsonl")
    with pytest.raises(ValueError, match="neither an existing path"):
        parse_corpus_source("nowhere")


def test_load_corpus_filters(cc_parquet):
    d, src = cc_parquet
    c = load_corpus(f"parquet:{d}", collection="OpenScience", languages="en", min_token_count=30, num_samples=8,
                    max_chars=None)
    want = src[(src.collection == "Open Science") & (src.language == "English") & (src.token_count >= 30)
               & (src.text != "")].head(8)
    assert c.texts == want.text.tolist()
    assert c.frame.identifier.tolist() == want.identifier.tolist()
    assert c.meta["filters"]["token_count_from"] == "token_count"
    # French by name, English by code; every non-empty row passes
    assert len(load_corpus(str(d), languages=["fr", "English"], num_samples=10**6)) == int((src.text != "").sum())
    assert len(load_corpus(str(d), num_samples=3, max_chars=15).texts[0]) == 15
    with pytest.raises(ValueError, match="none of the"):
        load_corpus(str(d), collection="OpenWeb")
    with pytest.raises(ValueError, match="num_samples"):
        load_corpus(str(d), num_samples=0)


def test_load_corpus_text_and_jsonl(tmp_path):
    t = write_demo_corpus(tmp_path / "demo.txt", 12)
    assert load_corpus(f"text:{t}", num_samples=50, max_chars=None).texts == demo_frame(12).text.tolist()
    with pytest.raises(ValueError, match="no 'language' column"):
        load_corpus(f"text:{t}", languages="en")
    j = write_demo_corpus(tmp_path / "demo.jsonl", 12)
    assert len(load_corpus(f"jsonl:{j}", collection="OpenSource", num_samples=5)) == 5


def test_hub_error_is_classified():
    e = _hub_error(CorpusSource("hf", "PleIAs/common_corpus"), ConnectionError("Couldn't reach the hub"))
    assert isinstance(e, HubUnreachableError) and isinstance(e, ValueError) and "--corpus parquet:" in str(e)
    assert not isinstance(_hub_error(CorpusSource("hf", "a/b"), FileNotFoundError("x")), HubUnreachableError)


def test_check_target_dims():
    assert check_target_dims("32,256,64,128", 384) == [256, 128, 64, 32]
    assert check_target_dims([384, 64], 384) == [64]
    with pytest.raises(ValueError, match="above the input dimension 384"):
        check_target_dims("768,256", 384)
    with pytest.raises(ValueError, match="comma-separated"):
        check_target_dims("x", 384)


@pytest.mark.parametrize("rank_loss", ["none", "listwise", "infonce"])
def test_cascade_loss_prefers_the_teacher(rank_loss):
    torch.manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(32, 48), dim=-1)
    cfg = CascadeConfig(rank_loss=rank_loss, rank_weight=0.0 if rank_loss == "none" else 0.5).check()
    same, parts = cascade_loss(t, t, cfg)
    other, _ = cascade_loss(torch.nn.functional.normalize(torch.randn(32, 8), dim=-1), t, cfg)
    assert parts["sim_loss"] < 1e-6 and other > same


def test_config_errors():
    with pytest.raises(ValueError, match="direct, cascade"):
        CascadeConfig(strategy="x").check()
    with pytest.raises(ValueError, match="--rank-weight"):
        CascadeConfig(rank_loss="infonce").check()


@pytest.mark.parametrize("strategy", ["direct", "cascade"])
def test_train_cascade_files_and_reload(tmp_path, strategy):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(1200, 32)) * np.linspace(2, 0.2, 32)).astype(np.float32)
    cfg = CascadeConfig(target_dims=[16, 8, 4], strategy=strategy, epochs=2, train_batch_size=128, device="cpu",
                        eval_queries=80, model_type="linear")
    res = train_cascade(x, cfg, out_dir=tmp_path, png=False, run_id="syn")
    for f in ("best_model.pt", "final_model.pt", "results.parquet", "results.csv", "history.parquet",
              "learning_curve.html", "plotly.min.js", "config.json", "split.npz"):
        assert (tmp_path / f).exists(), f
    t = pd.read_csv(tmp_path / "results.csv")
    assert t.dim.tolist() == [16, 8, 4] and np.allclose(t.compression_ratio, [2, 4, 8])
    assert t["overlap@10"].is_monotonic_decreasing and (t["overlap@10"] > 0.05).all()
    assert "cdn.plot.ly" not in (tmp_path / "learning_curve.html").read_text()
    best = Cascade.load(tmp_path / "best_model.pt")
    np.testing.assert_allclose(best.transform(x[:7], 4), res.best.transform(x[:7], 4), atol=1e-6)
    assert len(best.entries[4]["chain"]) == (2 if strategy == "cascade" else 0)
    final = Cascade.load(tmp_path / "final_model.pt")
    assert final.transform(x[:3], 8).shape == (3, 8)
    h = pd.read_parquet(tmp_path / "history.parquet")
    assert sorted(h.epoch.unique()) == [0, 1, 2] and set(h.dim) == {16, 8, 4}
    # the store: student and centred-PCA rows with the standard columns, the numbers of the report
    from ecd.store import read_metrics
    from ecd.plots import run_figures
    rows = read_metrics("syn")
    assert set(rows["mode"]) == {f"cascade_{strategy}", "pca_centered"} and len(rows) == 6
    for col in ("scope", "mode", "name", "rep_dim", "bytes_per_vector", "compression_ratio", "k", "run_id", "recall@10"):
        assert rows[col].notna().all(), col
    st = rows[rows["mode"] == f"cascade_{strategy}"].set_index("rep_dim").loc[[16, 8, 4]]
    np.testing.assert_allclose(st["overlap@10"], t["overlap@10"], atol=1e-9)
    np.testing.assert_allclose(st["recall@10"], st["overlap@10"], atol=1e-9)   # full teacher lists: the same number
    assert (st["ckpt_path"] == str(tmp_path / "best_model.pt")).all()
    assert "pareto_vs_teacher" in run_figures(rows)["vs_teacher"]
    # centred PCA = the PCA start of a linear student: training starts there and improves on it
    pca = rows[rows["mode"] == "pca_centered"].set_index("rep_dim").loc[[16, 8, 4]]
    np.testing.assert_allclose(t["pca_overlap@10"], pca["overlap@10"], atol=1e-9)
    assert (st["overlap@10"].to_numpy() >= pca["overlap@10"].to_numpy() - 0.05).all()


def cascade(argv, rc=0):
    "`ecd cascade ARGV` through the real command line; its exit code must be `rc`."
    from ecd.cli import main
    got = main(["cascade", *argv])
    assert got == rc, got
    return got


def test_cli_text_path_end_to_end(tmp_path, cc_parquet, capsys, monkeypatch):
    d, _ = cc_parquet
    cascade(["train", "--corpus", f"parquet:{d}", "--collection", "OpenCulture", "--languages", "en",
                  "--num_samples", "60", "--max-chars", "200", "--target-dims", "32", "--epochs", "1",
                  "--train-batch-size", "16", "--eval-queries", "6", "--output-dir", str(tmp_path / "run"),
                  "--save-embeddings", str(tmp_path / "e.npy"), "--device", "cpu", "--no-png"])
    out = capsys.readouterr().out
    assert "compression_ratio" in out and "best_model.pt" in out
    assert len(pd.read_parquet(tmp_path / "run" / "corpus.parquet")) == 60
    assert np.load(tmp_path / "e.npy").shape == (60, 384)
    cascade(["test", "--model-dir", str(tmp_path / "run"), "--test-queries", "What is an exception?,How do loops work?",
                  "--k", "3", "--device", "cpu"])
    rep = capsys.readouterr().out
    assert "Query: How do loops work?" in rep and "32-d: recall@3=" in rep and "original (384-d)" in rep
    cascade(["train", "--input-file", str(tmp_path / "e.npy"), "--target-dims", "384,16", "--epochs", "1",
                  "--train-batch-size", "16", "--eval-queries", "6", "--output-dir", str(tmp_path / "run2"),
                  "--device", "cpu", "--no-png"])
    assert pd.read_csv(tmp_path / "run2" / "results.csv").dim.tolist() == [16]
    assert cascade(["train", "--input-file", str(tmp_path / "e.npy"), "--target-dims", "512",
                    "--output-dir", str(tmp_path / "x")], rc=2) == 2
    err = capsys.readouterr().err
    assert "above the input dimension" in err and err.startswith("ecd cascade train: error: ") and err.count("\n") == 1
    # the corpus path refuses bad dims before it streams or encodes anything (a 768-d cascade on a 384-d model)
    import ecd.apps.cascade as cas
    monkeypatch.setattr(cas, "embed_corpus", lambda *a, **k: pytest.fail("encoded before checking the dims"))
    for bad, msg in ((["--target-dims", "768,256"], "above the input dimension"),
                     (["--embedding-dim", "768"], "gives 384-d embeddings"),
                     (["--save-embeddings", str(tmp_path / "e.txt")], "ending in .npy")):
        cascade(["train", "--corpus", f"parquet:{d}", "--device", "cpu", "--output-dir", str(tmp_path / "y"), *bad], rc=2)
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    # cascade test reads at most --num-samples rows of a corpus it is given
    monkeypatch.undo()
    cascade(["test", "--model-dir", str(tmp_path / "run"), "--test-queries", "What is an exception?", "--k", "3",
                  "--device", "cpu", "--corpus", f"parquet:{d}", "--num-samples", "7"])
    assert "Query: What is an exception?" in capsys.readouterr().out
    _, info = cas.run_test_queries(tmp_path / "run", "What is an exception?", k=3, corpus=f"parquet:{d}", device="cpu",
                                   num_samples=7)
    assert len(info["texts"]) == 7


def test_oom_guard_gives_advice():
    with pytest.raises(CascadeOOMError, match="--train-batch-size.*--num-samples"):
        with oom_guard():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_cli_demo_corpus(tmp_path, capsys):
    cascade(["demo-corpus", "--out", str(tmp_path / "demo.txt"), "--n", "25"])
    assert "--corpus text:" in capsys.readouterr().out
    assert (tmp_path / "demo.txt").read_text().splitlines() == demo_frame(25).text.tolist()


@pytest.mark.parametrize("path", sorted((ROOT / "configs/cascade").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    from ecd.apps.cascade import load_cascade_config
    cfg = load_cascade_config(path)
    assert cfg.run_id and cfg.train.target_dims == sorted(cfg.train.target_dims, reverse=True)


def test_config_flags_and_unknown_keys(tmp_path):
    from ecd.apps.cascade import _flags, load_cascade_config
    from ecd.cli import build_parser
    a = build_parser("cascade").parse_args(["cascade", "train", "--config", str(ROOT / "configs/cascade/demo.yaml"), "--epochs", "3",
                                   "--target-dims", "64,128", "--no-png", "--override", "train.lr=0.01"])
    cfg = load_cascade_config(a.config, a.override, _flags(a))
    assert (cfg.train.epochs, cfg.train.target_dims, cfg.train.lr, cfg.png) == (3, [128, 64], 0.01, False)
    assert cfg.train.train_batch_size == 256 and cfg.corpus.source == "text:data/demo_corpus.txt"  # untouched keys
    with pytest.raises(ValueError, match="Did you mean 'train.epochs'"):
        load_cascade_config(None, ["train.epoch=3"])


def test_help_has_no_history_words(capsys):
    from ecd.cli import build_parser
    for cmd in ("train", "test", "demo-corpus"):
        with pytest.raises(SystemExit):
            build_parser("cascade").parse_args(["cascade", cmd, "--help"])
        out = capsys.readouterr().out
        assert "seed 00" not in out.lower() and "issue" not in out.lower()
