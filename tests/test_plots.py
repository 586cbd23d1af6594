"""ecd.plots from outside the notebook: the Pareto front on a hand-made table, `ecd plot` on a
run log with the sweeps' schema, offline HTML (no CDN, one plotly.js per tree), the layout of make_plots,
a failed PNG export reported in one line."""
import base64
import json
import re
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ecd.plots import load_runs, make_plots, pareto_front, pareto_mask
from ecd.cli import main


def test_pareto_front_hand_made_table():
    t = pd.DataFrame({"name": ["sq8", "sq4", "pq16", "pq8", "pq8b", "pca16", "pq4", "nan"],
                      "bytes_per_vector": [64, 32, 16, 8, 8, 64, 4, 2],
                      "recall@10": [0.99, 0.90, 0.93, 0.80, 0.85, 0.70, 0.62, np.nan]})
    # minimize bytes, maximize recall: sq4 (32 B, .90) loses to pq16 (16 B, .93); pca16 to sq8; pq8 to pq8b
    assert list(pareto_front(t)["name"]) == ["pq4", "pq8b", "pq16", "sq8"]
    assert pareto_mask(t).sum() == 4
    # compression ratio: larger is better
    t["compression_ratio"] = 256 / t["bytes_per_vector"]
    assert list(pareto_front(t, "compression_ratio", "recall@10", x_dir="max")["name"]) == ["sq8", "pq16", "pq8b", "pq4"]


def _db(path):
    rows = [("s1", {"method": "pq", "num_chunks": 4, "num_clusters": 128}, {"compression_ratio": 128, "distortion": .30, "recall@10": .62}),
            ("s1", {"method": "pq", "num_chunks": 8, "num_clusters": 128}, {"compression_ratio": 64, "distortion": .20, "recall@10": .80}),
            ("s1", {"method": "pq", "num_chunks": 8, "num_clusters": 256}, {"compression_ratio": 64, "distortion": .15, "recall@10": .85}),
            ("s1", {"method": "sq", "bits": 8}, {"compression_ratio": 4, "distortion": .01, "recall@10": .99}),
            ("s2", {"method": "pq", "num_chunks": 16, "num_clusters": 256}, {"compression_ratio": 32, "distortion": .08, "recall@10": .93})]
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE runs (run_id TEXT, sweep_id TEXT, combo_id TEXT, status TEXT, config_json TEXT, "
                    "metrics_json TEXT, started TEXT, finished TEXT, error TEXT)")
        for i, (sw, c, m) in enumerate(rows):
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)", ("r", sw, f"c{i}", "completed", json.dumps(c),
                        json.dumps(m), f"2025-01-01T00:0{i}", None, None))
    return path


def test_ecd_plot_sweep(tmp_path, capsys):
    db = _db(tmp_path / "runs.db")
    assert main(["plot", "--db", str(db), "--sweep-id", "s1", "--out", str(tmp_path / "plots"), "--no-png"]) == 0
    paths = [p for p in capsys.readouterr().out.split() if p.endswith(".html")]
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["compression_vs_distortion.html", "compression_vs_recall.html"]
    folder = next(p for p in (tmp_path / "plots").iterdir() if p.is_dir())   # beside the shared plotly.min.js
    assert re.fullmatch(r"\d{8}_\d{6}", folder.name)
    html = (folder / "compression_vs_recall.html").read_text()
    assert re.findall(r'<script[^>]*src="([^"]+)"', html) == ["../plotly.min.js"]   # one bundle for every plot folder
    assert (tmp_path / "plots" / "plotly.min.js").exists() and not (folder / "plotly.min.js").exists()
    # the Pareto trace holds exactly the non-dominated configs of sweep s1 (pq 8x128 is dominated)
    fig = json.loads(re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', html, re.S).group(1))
    front = [t for t in fig if t.get("name") == "Pareto front"][0]
    x = front["x"]
    if isinstance(x, dict):  # plotly >= 6 stores arrays as base64 typed arrays
        x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"]))
    assert list(x) == [4, 64, 128]
    assert main(["plot", "--db", str(db), "--separate-methods", "--out", str(tmp_path / "p2"), "--no-png"]) == 0
    assert "sq_compression_vs_recall.html" in capsys.readouterr().out
    assert len(load_runs(db)) == 5


def test_ecd_plot_without_run_log(tmp_path, capsys):
    assert main(["plot", "--db", str(tmp_path / "missing.db"), "--no-png"]) == 2
    err = capsys.readouterr().err
    assert "Run a sweep first" in err and err.startswith("ecd plot: error: ") and err.count("\n") == 1


def test_make_plots_layout(tmp_path):
    run = tmp_path / "demo"
    rows = [{"mode": m, "name": f"{m}_d{d}", "scope": s, "stage": "one_stage", "backend": b, "rep_dim": d,
             "bytes_per_vector": 4 * d, "recall@10": d / 100, "overlap@10": d / 100, "ndcg@10": d / 90,
             "n_queries": 1000, "split": "test"}
            for m in ("pca", "trunc") for d in (8, 16, 32) for s, b in (("vs_teacher", "exact"), ("vs_student", "hnsw"))]
    rows.append({"mode": "float32", "name": "float32", "scope": "vs_teacher", "stage": "one_stage", "backend": "exact",
                 "rep_dim": 50, "bytes_per_vector": 200, "recall@10": 1.0})
    df = pd.DataFrame(rows)
    for m, part in df.groupby("mode"):
        (run / m).mkdir(parents=True)
        part.to_parquet(run / m / "metrics.parquet")
    w = make_plots(str(run), png=False)
    for stem in ("pareto_vs_teacher", "recall_vs_teacher_dim", "overlap_vs_teacher_dim", "ndcg_vs_teacher_dim"):
        assert (run / "figures" / "vs_teacher" / f"{stem}.html").exists()
    assert (run / "figures" / "vs_student" / "index_fidelity_vs_student.html").exists()
    # no one-point per-mode charts, no two-stage chart without two-stage rows, one family: no family chart
    assert not (run / "float32" / "figures").exists() and not (run / "pca" / "figures").exists()
    assert sorted(p.name for p in w["figures/vs_teacher"]) == [
        "ndcg_vs_teacher_dim.html", "overlap_vs_teacher_dim.html", "pareto_vs_teacher.html", "recall_vs_teacher_dim.html"]
    html = (run / "figures" / "vs_teacher" / "pareto_vs_teacher.html").read_text()
    assert "1,000 test queries" in html
    assert [p.name for p in tmp_path.rglob("plotly.min.js")] == ["plotly.min.js"] and (tmp_path / "plotly.min.js").exists()
    assert not (run / "train").exists()        # no training logs: no training figures, no error
    with pytest.raises(ValueError, match="Nothing to plot"):
        (tmp_path / "empty").mkdir()
        make_plots(str(tmp_path / "empty"), png=False)


def test_png_export_failure_is_one_warning_line(tmp_path):
    """A browser that dies at start: `ecd plot` still writes the HTML, exits 0 and says so in one line (no traceback)."""
    pytest.importorskip("kaleido")
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\necho 'browser noise on stderr' >&2\nexit 1\n")
    fake.chmod(0o755)
    run = tmp_path / "results" / "r"
    (run / "pca").mkdir(parents=True)
    pd.DataFrame([{"mode": "pca", "name": f"pca_d{d}", "scope": "vs_teacher", "stage": "one_stage", "rep_dim": d,
                   "bytes_per_vector": 4 * d, "recall@10": d / 64} for d in (8, 16)]).to_parquet(run / "pca" / "metrics.parquet")
    code = "import sys; from ecd.cli import main; sys.exit(main(['plot', '--run-id', sys.argv[1]]))"
    r = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "BROWSER_PATH": str(fake), "ECD_RESULTS_DIR": str(tmp_path / "results")})
    assert r.returncode == 0, r.stderr
    assert (run / "figures" / "vs_teacher" / "pareto_vs_teacher.html").exists()
    warn = [l for l in r.stderr.splitlines() if "PNG" in l]
    assert len(warn) == 1 and "PNG export failed" in warn[0] and "HTML written" in warn[0], r.stderr
    assert "Traceback" not in r.stderr and "browser noise" not in r.stderr


def test_one_style_per_mode_and_a_labelled_front():
    "A mode has one colour and symbol (ecd.figures.MODE_STYLES) in every figure, whatever else is in it; front points are named."
    from ecd.figures import MODE_STYLES
    from ecd.plots import pareto_vs_teacher, recall_vs_teacher_dim
    rows = [{"mode": m, "name": f"{m}_{d}", "scope": "vs_teacher", "stage": "one_stage", "rep_dim": d,
             "bytes_per_vector": b * d, "recall@10": r * d / 64}
            for m, b, r in (("pca", 4, .8), ("trunc", 4, .6), ("fp16", 2, .99), ("pq", .25, .7), ("opq", .25, .75))
            for d in (16, 32, 64)]
    df = pd.DataFrame(rows)
    figs = [pareto_vs_teacher(df), recall_vs_teacher_dim(df), pareto_vs_teacher(df[df["mode"].isin(["pca", "opq"])])]
    seen = {}
    for fig in figs:
        for t in fig.data:
            if t.name in MODE_STYLES:
                assert (t.marker.color, t.marker.symbol) == MODE_STYLES[t.name], t.name
                seen.setdefault(t.name, set()).add((t.marker.color, t.marker.symbol))
    assert all(len(v) == 1 for v in seen.values()) and {"pca", "trunc", "fp16", "pq", "opq"} <= set(seen)
    assert len({seen[m].pop() for m in ("pq", "opq", "fp16", "trunc")}) == 4        # pq/opq, fp16/trunc told apart
    front = [t for t in figs[0].data if t.name == "Pareto front"][0]
    assert list(front.text) == list(pareto_front(df)["name"]) and "text" in front.mode
    size = {t.name: np.asarray(t.marker.size) for t in figs[0].data if t.name in ("opq", "pq")}
    assert size["opq"].min() > size["pq"].max()                    # front points (every opq row here) drawn larger
