"""ecd.explore driven through the widgets' Python API on a results folder made here."""
import json
import sqlite3

import pandas as pd
import pytest

from ecd.explore import explore


@pytest.fixture
def results(tmp_path):
    rows = [{"run_id": "r1", "mode": m, "name": f"{m}_d{d}", "scope": s, "stage": "one_stage", "backend": "exact",
             "rep_dim": d, "bytes_per_vector": 4 * d, "recall@10": r, "ndcg@10": r, "spec": f"{m}:{d}"}
            for m, pts in {"pca": [(8, .5), (16, .7), (32, .9)], "rp": [(8, .3), (16, .75), (32, .8)]}.items()
            for d, r in pts for s in ("vs_teacher", "vs_student")]
    df = pd.DataFrame(rows)
    for m, part in df.groupby("mode"):
        (tmp_path / "r1" / m).mkdir(parents=True)
        part.to_parquet(tmp_path / "r1" / m / "metrics.parquet")
    with sqlite3.connect(tmp_path / "runs.db") as con:
        con.execute("CREATE TABLE runs (run_id TEXT, sweep_id TEXT, combo_id TEXT, status TEXT, config_json TEXT, "
                    "metrics_json TEXT, started TEXT, finished TEXT, error TEXT)")
        con.execute("INSERT INTO runs VALUES ('r1','sw1','c0','completed',?,?,'2025',NULL,NULL)",
                    (json.dumps({"method": "pq", "num_chunks": 8}), json.dumps({"compression_ratio": 64, "recall@10": .8})))
    return tmp_path


def test_explorer_filters_axes_selection(results):
    app = explore(results)
    assert app.runs.value == ("r1",)
    assert [t.name for t in app.fig.data] == ["pca", "rp", "Pareto front"]
    # rp_d16 (64 B, .75) beats pca_d16 (64 B, .70): the front holds pca_d8, rp_d16, pca_d32
    assert list(app.pareto()["name"]) == ["pca_d8", "rp_d16", "pca_d32"]
    app.mode.value = ("pca",)
    assert [t.name for t in app.fig.data] == ["pca", "Pareto front"]
    assert list(app.fig.data[-1].x) == [32, 64, 128]
    app.dims.value = (16, 32)
    assert sorted(app.view["rep_dim"]) == [16, 32]
    app.y.value = "ndcg@10"
    assert app.fig.layout.yaxis.title.text == "ndcg@10"
    app.point.value = int(app.view.index[0])
    assert "pca_d16" in app.details.value
    assert any(t.name == "selected" for t in app.fig.data)
    # no run was prepared in this folder: the per-query view says why instead of failing
    assert "unavailable" in app.query_view.value
    app.source.value = "sweeps"
    assert app.sweeps.value == ("sw1",) and len(app.view) == 1 and app.x.value == "compression_ratio"
