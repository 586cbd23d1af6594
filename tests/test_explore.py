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


def test_explorer_controls_stage_backend_families(results):
    """Each control has its own Layout (the runs view shows the runs list and the mode filter); the stage filter keeps
    teacher-reranked rows off the one-stage chart; the backend filter; students drawn in the learned family's hues."""
    from ecd.plots import FAMILY_COLORS
    extra = pd.DataFrame([
        {"run_id": "r1", "mode": "pca", "name": "pca_d8", "scope": "vs_teacher", "stage": "two_stage", "backend": "exact",
         "rerank_r": 100, "rep_dim": 8, "bytes_per_vector": 32, "recall@10": 0.99, "ndcg@10": 0.99, "spec": "pca:8"},
        {"run_id": "r1", "mode": "student", "name": "student_d16", "scope": "vs_teacher", "stage": "one_stage",
         "backend": "exact", "rep_dim": 16, "bytes_per_vector": 64, "recall@10": 0.8, "ndcg@10": 0.8,
         "spec": "student+float32", "ckpt_path": "train/best.pt"}])
    for m, part in extra.groupby("mode"):
        p = results / "r1" / m / "metrics.parquet"
        old = pd.read_parquet(p) if p.exists() else None
        (results / "r1" / m).mkdir(parents=True, exist_ok=True)
        pd.concat([d for d in (old, part) if d is not None], ignore_index=True).to_parquet(p)
    app = explore(results)
    widgets = (app.runs, app.sweeps, app.mode, app.stage, app.scope, app.backend, app.dims, app.x, app.y)
    assert len({id(w.layout) for w in widgets}) == len(widgets)
    assert app.runs.layout.display is None and app.mode.layout.display is None and app.sweeps.layout.display == "none"
    assert set(app.view["stage"]) == {"one_stage"} and 0.99 not in set(app.view["recall@10"])
    assert 0.99 not in list(app.fig.data[-1].y)                  # the front never runs through the reranked row
    app.stage.value = "two_stage"
    assert list(app.view["name"]) == ["pca_d8"] and "two-stage" in app.fig.layout.title.text
    app.stage.value = "one_stage"
    colors = {t.name: t.marker.color for t in app.fig.data if t.name != "Pareto front"}
    assert colors["student"] in FAMILY_COLORS["learned"] and colors["pca"] in FAMILY_COLORS["classic"]
    app.scope.value = "vs_student"
    app.backend.value = ()
    assert app.view.empty
