"""Bounded memory at scale: synthetic data generated block by block, encodings written chunk by chunk into a
memory map (a killed encoding resumes), prepared data memory-mapped, codecs fitted on a recorded sample, student
targets of a sample of the training rows, and `ecd prepare --shards/--executor` through the CLI."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import numpy as np
import pytest

import ecd.data as data
from ecd.data import load, prepare, resolve_synthetic, synthetic_npy


pytestmark = pytest.mark.usefixtures("isolated_dirs")


def test_synthetic_blockwise_equals_one_stream():
    from ecd.data import synthetic_vectors
    p = synthetic_npy(3001, 12, 5, seed=3, block_rows=400)
    np.testing.assert_array_equal(np.load(p), synthetic_vectors(3001, 12, 5, seed=3))
    assert synthetic_npy(3001, 12, 5, seed=3) == p                      # made once
    spec = resolve_synthetic("synthetic:500x8")
    assert spec.startswith("npy:") and np.load(spec[4:]).shape == (500, 8)
    assert resolve_synthetic("glove-50") == "glove-50"
    with pytest.raises(ValueError, match="synthetic:NxD"):
        resolve_synthetic("synthetic:lots")
    with pytest.raises(ValueError, match="n >= 2"):
        synthetic_npy(1, 4)


def test_npy_float32_stays_memory_mapped(tmp_path):
    p = synthetic_npy(2000, 16)
    e = load(f"npy:{p}")
    assert isinstance(e.vectors.base, np.memmap) or isinstance(e.vectors, np.memmap)
    prep = prepare(f"npy:{p}", mmap=True)
    base = prep.emb.vectors
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap) and str(base.filename).startswith(str(prep.path))
    again = prepare(f"npy:{p}", mmap=True)                               # the cache hit is mapped too
    np.testing.assert_array_equal(again.emb.vectors, np.load(p))
    assert prepare(f"npy:{p}").emb.vectors.flags.writeable               # default: in memory, as before


class FakeEncoder:
    "Deterministic 'model': a text's vector from its length and characters; can be told to die after n calls."
    def __init__(self, die_after=None):
        self.calls, self.texts, self.die_after = 0, 0, die_after

    def encode(self, batch, batch_size=None, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False):
        if self.die_after is not None and self.calls >= self.die_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.texts += len(batch)
        v = np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in batch], np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_encoding_written_in_chunks_and_resumed(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "ENCODE_CHUNK", 100)
    texts = [f"word{i}" * (1 + i % 3) for i in range(450)]
    path = tmp_path / "enc" / "k.npy"
    ref = FakeEncoder()
    full = np.asarray(data._encode_to_npy(texts, ref, 25, "cpu", True, tmp_path / "ref.npy", "key"))
    # 1 probe call for the dim, then batches of 25: dying at call 10 leaves two whole chunks (200 texts) done
    dying = FakeEncoder(die_after=10)
    with pytest.raises(KeyboardInterrupt):
        data._encode_to_npy(texts, dying, 25, "cpu", True, path, "key")
    assert not path.exists() and json.loads((path.parent / ".k.partial.json").read_text())["done"] == 200
    again = FakeEncoder()
    out = data._encode_to_npy(texts, again, 25, "cpu", True, path, "key")
    assert again.texts == 250                                            # only the missing rows were encoded
    np.testing.assert_array_equal(np.asarray(out), full)
    assert path.exists() and not (path.parent / ".k.partial.npy").exists()
    # another text list (another key) does not resume from a stale partial file
    dying = FakeEncoder(die_after=6)
    with pytest.raises(KeyboardInterrupt):
        data._encode_to_npy(texts, dying, 25, "cpu", True, path.with_name("j.npy"), "key-a")
    other = FakeEncoder()
    data._encode_to_npy(texts, other, 25, "cpu", True, path.with_name("j.npy"), "key-b")
    assert other.texts == 451


def _run(n=3000, dim=16, shards=None, run_id="s1"):
    from ecd.runs import prepare_run
    return prepare_run(run_id, f"synthetic:{n}x{dim}", k=20, shards=shards)


def test_prepare_run_sharded_records_how(tmp_path):
    m = _run(shards=3)
    cb = m["knn"]["computed_by"]
    assert set(cb) == {"val", "test"} and cb["test"]["shards"] == 3 and cb["test"]["computed"] == 3
    assert m["dataset"]["spec"].startswith("npy:") and "synthetic_n3000_d16" in m["dataset"]["spec"]
    from ecd.runs import load_eval_data
    from ecd.knn import exact_topk
    ev = load_eval_data("s1", "test")
    i0 = exact_topk(ev.database, ev.database[ev.query_idx], 20, exclude_ids=ev.query_idx)[1]
    np.testing.assert_array_equal(ev.truth_ids, i0)


def test_baselines_fit_on_a_recorded_sample(tmp_path):
    from ecd.runs import run_baselines
    _run()
    df = run_baselines("s1", ["pca:8"], max_train=500)
    assert set(df["max_train"]) == {500} and set(df["n_fit"]) == {500}
    df = run_baselines("s1", ["pca:8"], max_train=None)
    assert set(df["n_fit"]) == {2400}


def test_student_targets_of_a_sample(tmp_path):
    from ecd.runs import load_run_data
    from ecd.student import train_sample, train_targets
    from ecd.knn import exact_topk
    _run()
    prep, _ = load_run_data("s1")
    assert np.array_equal(train_sample(prep), prep.split["train"])     # small: every training row
    tk = train_targets(prep, 15, max_rows=700)
    assert tk.ids.shape == (700, 15) and len(tk.rows) == 700 and np.isin(tk.rows, prep.split["train"]).all()
    assert np.array_equal(tk.rows, train_sample(prep, 700)) and (np.diff(tk.rows) > 0).all()
    x = np.asarray(prep.emb.vectors[tk.rows])
    np.testing.assert_array_equal(tk.ids, exact_topk(x, x, 15, exclude_ids=np.arange(700))[1])


def test_cli_prepare_shards(tmp_path, capsys):
    from ecd.cli import main
    assert main(["prepare", "--run-id", "c1", "--dataset", "synthetic:2000x8", "--k", "10", "--shards", "4"]) == 0
    m = json.loads((tmp_path / "results" / "c1" / "manifest.json").read_text())
    assert m["knn"]["computed_by"]["test"]["shards"] == 4
    assert main(["prepare", "--run-id", "c2", "--dataset", "synthetic:2000x8", "--shards", "0"]) == 2
    assert "--shards 0 is not a count" in capsys.readouterr().err
    assert main(["baselines", "--run-id", "c1", "--modes", "pca", "--dims", "4", "--max-train", "300"]) == 0
    from ecd.store import read_metrics
    rows = read_metrics("c1")
    assert set(rows["n_fit"]) == {300} and set(rows["max_train"]) == {300}
