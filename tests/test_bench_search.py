"""The search bench end to end on a small synthetic run of 50 dims (a dim the default chunk counts do not divide, as
on data no one tuned for): specs moved to chunk counts that fit, the exported index timed in a faiss-only process, the
bars named after the fast-scan reference that was run, and exit 0/1 by the bars."""
import importlib.util
import json
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ECD_THREADS", "1")


def _bench():
    path = Path(__file__).parents[1] / "benchmarks" / "bench_search.py"
    spec = importlib.util.spec_from_file_location("bench_search", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_search_small_odd_dim(tmp_path, capsys):
    out = tmp_path / "s.json"
    rc = _bench().main(["--dataset", "synthetic:3000x50", "--max-items", "3000", "--queries", "40", "--n-db", "6000",
                        "--classic", "pq:16x256;pqfs:32;lsqfs:8;pqfs:32,refine=flat", "--learned", "llsqfs:8",
                        "--out", str(out)])
    text = capsys.readouterr().out
    assert rc in (0, 1) and ("MISS" in text) == (rc == 1)
    j = json.loads(out.read_text())
    names = [r["name"] for r in j["rows"]]
    assert names == ["pq_m10_k256", "pqfs_m25", "lsqfs_m8", "pqfs_m25_refine_flat_kf8", "llsqfs_m8"], names
    assert all(r["n_db_big"] >= 6000 and r["export_ms_per_query"] > 0 for r in j["rows"])
    bars = {b["bar"]: b for b in j["bars"]}
    assert "16 B fast-scan (<= 1.5x pqfs_m25's ms): learned >= classic + 0.03" in bars
    two = [b for b in j["bars"] if b["bar"].startswith("two stages (pqfs_m25")][0]
    assert "13 B code + 200 B floats" in two["measured"]
