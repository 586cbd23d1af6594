"""The search bench end to end on a small synthetic run of 50 dims (a dim the default chunk counts do not divide, as
on data no one tuned for): specs moved to chunk counts that fit, the exported index timed in a faiss-only process, the
bars named after the fast-scan reference that was run, and exit 0/1 by the bars."""
import json

import pytest


pytestmark = pytest.mark.usefixtures("isolated_dirs")


def test_bench_search_small_odd_dim(tmp_path, capsys, load_bench):
    out = tmp_path / "s.json"
    rc = load_bench("bench_search").main(["--dataset", "synthetic:3000x50", "--max-items", "3000", "--queries", "40", "--n-db", "6000",
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
