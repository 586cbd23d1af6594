"""Bad input to ecd.data fails with a ValueError that names the problem and the fix; local hub-layout datasets load
through `datasets`; an unreachable hub gives a clear error."""
import os

# The hub is not reachable from CI: fail fast instead of retrying (read by huggingface_hub / datasets at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest

from ecd.data import (HubUnreachableError, load, parse_spec, prepare, split_indices, validate_vectors)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)


def _npy(tmp_path, name, arr):
    p = tmp_path / name
    np.save(p, arr)
    return f"npy:{p}"


def _hub_dir(tmp_path, x):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("---\nlicense: mit\n---\n# toy\n")
    pd.DataFrame({"id": np.arange(len(x)), "text": [f"t{i}" for i in range(len(x))], "embedding": list(x)}
                 ).to_parquet(repo / "data" / "train-00000-of-00001.parquet")
    pd.DataFrame({"embedding": list(x[:4] + 1)}).to_parquet(repo / "data" / "other.parquet")
    return repo


# --- bad input -------------------------------------------------------------------------------------------------

def test_nan_inf_rows(tmp_path, x):
    x[[2, 9]] = np.nan
    x[20, 1] = np.inf
    with pytest.raises(ValueError, match=r"3 of 30 rows contain NaN or Inf \(first rows: \[2, 9, 20\]\).*isfinite"):
        load(_npy(tmp_path, "nan.npy", x))


def test_zero_rows(tmp_path, x):
    with pytest.raises(ValueError, match="has zero rows.*check the file"):
        load(_npy(tmp_path, "empty_matrix.npy", np.zeros((0, 6), np.float32)))
    x[5] = 0
    with pytest.raises(ValueError, match=r"1 of 30 rows are all zeros \(first rows: \[5\]\).*allow_zero_rows=True"):
        load(_npy(tmp_path, "zero_vec.npy", x))
    assert load(_npy(tmp_path, "zero_vec.npy", x), allow_zero_rows=True).n == 30


def test_one_dimensional(tmp_path, x):
    with pytest.raises(ValueError, match=r"is 1-D with shape \(6,\).*reshape\(1, -1\)"):
        load(_npy(tmp_path, "flat.npy", x[0]))
    with pytest.raises(ValueError, match="1-D"):
        validate_vectors(np.arange(3.0))


def test_empty_file(tmp_path):
    for kind, name in [("npy", "e.npy"), ("npz", "e.npz"), ("parquet", "e.parquet"), ("text", "e.txt")]:
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(ValueError, match=r"is empty \(0 bytes\)"):
            load(f"{kind}:{tmp_path / name}")


def test_missing_column(tmp_path, x):
    p = tmp_path / "p.parquet"
    pd.DataFrame({"vec": list(x), "text": ["a"] * 30}).to_parquet(p)
    with pytest.raises(ValueError, match=r"no column name contains 'embedding' \(columns: \['vec', 'text'\]\).*#vec"):
        load(f"parquet:{p}")
    with pytest.raises(ValueError, match=r"column 'nope' not found; the columns are \['vec', 'text'\]"):
        load(f"parquet:{p}#nope")
    assert load(f"parquet:{p}#vec").texts == ["a"] * 30


def test_ambiguous_column(tmp_path, x):
    p = tmp_path / "amb.parquet"
    pd.DataFrame({"embedding_a": list(x), "b_embedding": list(x)}).to_parquet(p)
    with pytest.raises(ValueError, match=r"2 columns contain 'embedding' \(\['embedding_a', 'b_embedding'\]\).*#embedding_a"):
        load(f"parquet:{p}")
    np.testing.assert_array_equal(load(f"parquet:{p}#b_embedding").vectors, x)
    q = tmp_path / "two.npz"
    np.savez(q, a=x, b=x)
    with pytest.raises(ValueError, match=r"no 'embeddings' key and 2 arrays \(\['a', 'b'\]\)"):
        load(f"npz:{q}")


def test_unknown_spec():
    for bad in ["glove-300", "csv:/tmp/a.csv", "npy:", "", "hf"]:
        with pytest.raises(ValueError, match="Valid forms: glove-50"):
            parse_spec(bad)
    with pytest.raises(ValueError, match="Unknown data spec 'foo:bar'.*hf:REPO"):
        load("foo:bar")


def test_missing_file(tmp_path):
    for kind in ["npy", "npz", "parquet", "text"]:
        with pytest.raises(ValueError, match="file not found.*check the path"):
            load(f"{kind}:{tmp_path / 'nope.bin'}")


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_bad_max_items(tmp_path, x, bad):
    with pytest.raises(ValueError, match="max_items must be a positive integer"):
        load(_npy(tmp_path, "x.npy", x), max_items=bad)
    with pytest.raises(ValueError, match="max_items must be a positive integer"):
        prepare(_npy(tmp_path, "x.npy", x), max_items=bad)


def test_bad_split_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        split_indices(10, fractions=(0.5, 0.2, 0.2))


# --- the hub layout through datasets ------------------------------------------------------------------------------

def test_hub_layout(tmp_path, x):
    repo = _hub_dir(tmp_path, x)
    e = load(f"hf:{repo}", max_items=12, cache_dir=tmp_path / "hf_cache")
    np.testing.assert_array_equal(e.vectors, x[:12])
    assert e.texts == [f"t{i}" for i in range(12)]
    assert e.meta["column"] == "embedding" and e.meta["split"] == "train" and e.meta["n_source"] == 30
    one = load(f"hf:{repo}:data/other.parquet")
    np.testing.assert_array_equal(one.vectors, x[:4] + 1)
    assert one.texts is None and one.meta["parquet_file"] == "data/other.parquet"
    with pytest.raises(ValueError, match="column 'emb' not found"):
        load(f"hf:{repo}#emb")


def test_hub_layout_prepare(tmp_path, x):
    repo = _hub_dir(tmp_path, x)
    p = prepare(f"hf:{repo}", max_items=20)
    assert p.path.parent == tmp_path / "data" and p.path.name.startswith("hf-repo-") and p.path.name.endswith("_n20")
    assert p.manifest["split"]["sizes"] == {"train": 16, "val": 2, "test": 2}
    again = prepare(f"hf:{repo}", max_items=20)
    assert again.manifest["created"] == p.manifest["created"]          # answered from the cache
    np.testing.assert_array_equal(again.emb.vectors, x[:20])


def test_hub_unreachable():
    with pytest.raises(HubUnreachableError) as info:
        load("hf:chaehoyu/wikipedia-22-12-ko-embeddings-100k", max_items=100)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, ConnectionError)
    assert "hub is unreachable" in str(err) and "hf:<dir>" in str(err) and "parquet:<file>" in str(err)
    assert err.__cause__ is not None                                     # the datasets error is kept
