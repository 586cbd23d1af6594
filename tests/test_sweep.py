"""Sweeps (ecd.sweep): executors (process, dask LocalCluster, papermill = inline), kill + resume, concurrent sweeps,
the vq sweep + SQL, the sweep-dim-out. Tiny synthetic data throughout."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ecd.store import read_runs
from ecd.data import synthetic_vectors
from ecd.sweep import TIMING_KEYS, ensure_run, load_sweep_config, run_combo, run_sweep
from ecd.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECD_PAPERMILL_DIR", str(tmp_path / "papermill_runs"))
    monkeypatch.setenv("ECD_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ECD_THREADS", "1")  # tiny data: one thread each (OpenMP spinning on a busy 2-core box is slow)
    np.save(tmp_path / "x.npy", synthetic_vectors(800, 16, n_clusters=8, seed=3))
    ensure_run("tiny", f"npy:{tmp_path}/x.npy", k=20)
    return tmp_path


def tiny_cfg(store, grid="{mode: [pca, rp], dim: [4, 8]}", fixed="{ks: [1, 10]}"):
    return load_sweep_config(overrides=[f"sweep.dataset=npy:{store}/x.npy", "sweep.k=20", "sweep.max_queries=40",
                                        f"sweep.grid={grid}", f"sweep.fixed={fixed}"])


def quality(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in TIMING_KEYS and not any(k.endswith(t) for t in TIMING_KEYS)}


def same_metrics(a: dict, b: dict) -> bool:
    "Equal keys, equal strings, numbers equal up to float rounding (timings left out)."
    a, b = quality(a), quality(b)
    assert set(a) == set(b), set(a) ^ set(b)
    for k in a:
        if isinstance(a[k], (int, float)) and isinstance(b[k], (int, float)):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), (k, a[k], b[k])
        else:
            assert a[k] == b[k], (k, a[k], b[k])
    return True


def by_combo(sweep_id):
    return {r["combo_id"]: r for _, r in read_runs(sweep_id).iterrows()}


def test_dask_local_cluster_4_combos_match_inline(store):
    inline = run_sweep(tiny_cfg(store), run_id="tiny")
    r = run_sweep(tiny_cfg(store), run_id="tiny", executor="dask", workers=2, force=True)
    assert r.counts == {"combos": 4, "reused": 0, "ran": 4, "failed": 0}
    got, ref = by_combo(r.sweep_id), by_combo(inline.sweep_id)
    assert set(got) == set(ref) and {x["status"] for x in got.values()} == {"done"}
    assert {x["executor"] for x in got.values()} == {"dask"} and all(x["pid"] != os.getpid() for x in got.values())
    for c in got:
        assert same_metrics(got[c]["metrics"], ref[c]["metrics"])


def test_process_pool(store):
    r = run_sweep(tiny_cfg(store, "{mode: [pca], dim: [4, 8]}"), run_id="tiny", executor="process", workers=2)
    assert list(r.summary["status"]) == ["done", "done"] and r.summary["recall@10"].between(0, 1).all()


def test_papermill_gives_the_inline_metrics(store):
    cfg = tiny_cfg(store, "{dim: [8]}", "{mode: pca, ks: [1, 10]}")
    a = run_sweep(cfg, run_id="tiny", executor="inline")
    b = run_sweep(cfg, run_id="tiny", executor="papermill", force=True)
    (ca, ra), = by_combo(a.sweep_id).items()
    (cb, rb), = by_combo(b.sweep_id).items()
    assert ca == cb and rb["status"] == "done" and rb["reused_from"] is None
    assert same_metrics(rb["metrics"], ra["metrics"]) and len(quality(ra["metrics"])) > 10
    nb = store / "papermill_runs" / b.sweep_id / f"{cb}.ipynb"
    text = nb.read_text()
    assert 'recall@10' in text and "status: done" in text   # the executed notebook is the combo's report
    assert rb["pid"] != os.getpid()                             # recorded by the kernel itself
    # it stands alone: the figure also as a PNG or an HTML figure nbconvert shows, the preparation time, no bars
    outs = [o for c in json.loads(text)["cells"] for o in c.get("outputs", [])]
    figs = [o["data"] for o in outs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figs and {"image/png", "text/html"} & set(figs[-1])
    assert "preparing run" in text and "Loading weights" not in text and "it/s]" not in text


def test_papermill_parses_every_parameter(caplog):
    "The parameters cell has each comment on its own line: papermill reads every parameter, warns of none."
    import papermill
    params = papermill.inspect_notebook(str(Path(__file__).resolve().parents[1] / "nbs" / "sweep.ipynb"))
    assert {"kind", "mode", "dim", "spec", "dataset", "max_items", "threads"} <= set(params)
    assert "Unable to parse" not in caplog.text


def test_papermill_failure_is_recorded(store):
    cfg = tiny_cfg(store, "{dim: [4, 64]}", "{mode: pca}")
    r = run_sweep(cfg, run_id="tiny", executor="papermill")
    st = r.summary.set_index("combo_id")["status"].to_dict()
    assert st == {"000_dim-4": "done", "001_dim-64": "failed"}
    assert "64" in read_runs(r.sweep_id, status="failed")["error"].iloc[0]


SWEEP_CMD = ("import sys; from ecd.cli import main; sys.exit(main(['sweep', *sys.argv[1:]]))")


def _sweep_proc(store, *args, grid="{num_chunks: [4, 8, 16], num_clusters: [64, 128, 256]}"):
    cfg = store / "vq.yaml"
    cfg.write_text(f"sweep:\n  name: kill\n  kind: vq\n  dataset: npy:{store}/big.npy\n  k: 20\n  max_queries: 200\n"
                   f"  fixed: {{method: pq, ks: [10]}}\n  grid: {grid}\n")
    return subprocess.Popen([sys.executable, "-c", SWEEP_CMD, "--config", str(cfg), "--run-id", "big", *args],
                            env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _count(db, sql):
    try:
        with sqlite3.connect(db, timeout=30) as c:
            return c.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # the sweep has created the file but not yet the table
        return 0


def test_sigkill_then_rerun_finishes_every_combo_once(store):
    np.save(store / "big.npy", synthetic_vectors(4000, 32, n_clusters=32, seed=1))
    ensure_run("big", f"npy:{store}/big.npy", k=20)
    db = store / "results" / "runs.db"
    grid = "{num_chunks: [4, 8, 16], num_clusters: [32, 64, 128]}"
    p = _sweep_proc(store, grid=grid)
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        if db.exists() and _count(db, "SELECT COUNT(*) FROM runs WHERE status = 'done'") >= 2:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done_at_kill = _count(db, "SELECT COUNT(*) FROM runs WHERE status = 'done'")
    assert 2 <= done_at_kill < 9, done_at_kill
    first = _count(db, "SELECT sweep_id FROM runs ORDER BY started LIMIT 1")
    p2 = _sweep_proc(store, grid=grid)
    assert p2.wait(120) == 0, p2.stderr.read()[-2000:]
    rows = read_runs(db=db)
    old, new = rows[rows["sweep_id"] == first], rows[rows["sweep_id"] != first]
    assert len(new) == 9 and set(new["status"]) == {"done"}
    assert new["reused_from"].notna().sum() == done_at_kill          # finished combos were not computed again
    computed = rows[(rows["status"] == "done") & rows["reused_from"].isna()]
    assert computed["config_hash"].value_counts().max() == 1 and computed["config_hash"].nunique() == 9
    assert set(old["status"]) <= {"done", "interrupted"}              # the killed combo (if any) is marked, none 'running'


def test_two_sweeps_at_once_lose_nothing(store):
    np.save(store / "big.npy", synthetic_vectors(2000, 32, n_clusters=16, seed=2))
    ensure_run("big", f"npy:{store}/big.npy", k=20)
    grid = "{num_chunks: [4, 8, 16], num_clusters: [16]}"
    ps = [_sweep_proc(store, "--force", "--sweep-id", s, grid=grid) for s in ("sweep_one", "sweep_two")]
    if [p.wait(180) for p in ps] != [0, 0]:                           # the whole of each stderr, untruncated
        pytest.fail("\n\n".join(f"sweep {i} exit {p.returncode}:\n{p.stderr.read()[-3000:]}" for i, p in enumerate(ps)))
    rows = read_runs()
    assert rows.groupby("sweep_id")["status"].apply(lambda s: (s == "done").sum()).to_dict() == {"sweep_one": 3, "sweep_two": 3}


def test_vq_sweep_and_seed_002_sql(store, capsys):
    rc = main(["vq", "sweep", "--method", "pq", "--pq-chunks", "4,8", "--pq-clusters", "16,32", "--dataset", "synthetic:1000x16",
                  "--k", "20", "--max-queries", "50"])
    out = capsys.readouterr().out
    assert rc == 0
    sweep_id = out.split("Sweep ID: ")[1].split()[0]
    assert sweep_id.startswith("sweep_") and len(sweep_id) == len("sweep_20251003_143052_a3b9f2c1")
    with sqlite3.connect(store / "results" / "runs.db") as c:
        got = c.execute("SELECT config_json, json_extract(metrics_json, '$.compression_ratio'), "
                        f"json_extract(metrics_json, '$.recall@10') FROM runs WHERE sweep_id = '{sweep_id}'").fetchall()
    assert len(got) == 4
    cfgs = [json.loads(g[0]) for g in got]
    assert {(c["num_chunks"], c["num_clusters"]) for c in cfgs} == {(4, 16), (4, 32), (8, 16), (8, 32)}
    assert all(c["method"] == "pq" for c in cfgs) and all(g[1] > 1 and 0 < g[2] <= 1 for g in got)


def test_train_kind_and_sweep_dim_out(store):
    pytest.importorskip("ecd.student")
    knobs = {"steps": 5, "batch_size": 64, "pool_l": 50, "tail_to": 50, "max_queries": 40, "eval.max_queries": 40,
             "train_config": str(ROOT / "configs/train/default.yaml")}
    m = run_combo("train", {**knobs, "dim": 8, "quantizers": ["float32", "sq8"], "ks": [1, 10]}, "tiny")
    assert m["out_dim"] == 8 and 0 < m["recall@10"] <= 1 and m["mode"] == "student"
    sq = [k for k in m if k.endswith(":recall@10") and "sq" in k]
    assert len(sq) == 1 and 0 < m[sq[0]] <= 1 and m[sq[0].replace("recall@10", "bytes_per_vector")] == 8
    out = store / "dim.jsonl"
    rc = main(["sweep-dim-out", "--dim-outs", "8,4", "--run-id", "tiny", "--steps", "5", "--k", "10", "--output", str(out),
                             "--train-config", str(ROOT / "configs/train/default.yaml"),
                             "--override", "batch_size=64", "--override", "pool_l=50", "--override", "tail_to=50",
                             "--override", "eval.max_queries=40", "--override", "keep_checkpoint=false"])
    assert rc == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["meta"]["dim_out"] for r in recs] == [8, 4]
    for r in recs:
        assert 0 < r["metrics"]["recall@10"] <= 1 and "ndcg@10" in r["metrics"]
        meta = r["meta"]
        assert meta["k"] == 10 and meta["seed"] == 42 and meta["hyperparameters"]["train"]["steps"] == 5
        assert sum(len(v) for v in meta["split"]["indices"].values()) == 800
    rc = main(["sweep-dim-out", "--dim-outs", "4", "--run-id", "tiny", "--steps", "5", "--k", "10", "--output-format", "json",
                             "--output", str(store / "dim.json"), "--train-config", str(ROOT / "configs/train/default.yaml"),
                             "--override", "batch_size=64", "--override", "pool_l=50", "--override", "tail_to=50",
                             "--override", "eval.max_queries=40", "--override", "keep_checkpoint=false"])
    payload = json.loads((store / "dim.json").read_text())  # one JSON document (--output-format json)
    assert rc == 0 and payload["sweep_id"].startswith("sweep_")
    assert [r["meta"]["dim_out"] for r in payload["runs"]] == [4] and 0 < payload["runs"][0]["metrics"]["recall@10"] <= 1


def test_student_among_the_modes_and_train_rows_in_the_store(store):
    "The student distillation's modes x dims sweep with the learned student as a mode: rep_dim and ckpt_path in the outputs."
    pytest.importorskip("ecd.student")
    from ecd.store import read_metrics
    knobs = "{ks: [1, 10], steps: 5, batch_size: 64, pool_l: 50, tail_to: 50, eval.max_queries: 40}"
    r = run_sweep(tiny_cfg(store, grid="{mode: [pca, student], dim: [4, 8]}", fixed=knobs), run_id="tiny")
    s = r.summary.set_index("combo_id")
    assert r.counts == {"combos": 4, "reused": 0, "ran": 4, "failed": 0}
    stu = s[s["mode"] == "student"]
    assert sorted(stu["rep_dim"]) == [4, 8] and all(Path(p).exists() for p in stu["ckpt_path"])
    assert s[s["mode"] == "pca"]["ckpt_path"].isna().all()
    st = read_metrics("tiny")
    assert {"pca", "student"} <= set(st["mode"]) and st[st["mode"] == "student"]["ckpt_path"].notna().all()
    # a train sweep: one student per combo, each its own row in results/tiny/student/metrics.parquet
    t = load_sweep_config(overrides=[f"sweep.dataset=npy:{store}/x.npy", "sweep.k=20", "sweep.max_queries=40",
                                     "sweep.kind=train", "sweep.name=lrs", "sweep.grid={lr: [0.001, 0.002]}",
                                     f"sweep.fixed={knobs[:-1]}, dim: 4}}"])
    r2 = run_sweep(t, run_id="tiny")
    st2 = read_metrics("tiny")
    assert r2.counts["failed"] == 0 and st2["name"].str.endswith(tuple(r2.summary["combo_id"])).sum() == 2
    assert (r2.out_dir / "figures" / "pareto_vs_teacher.html").exists()  # latency measured: the Pareto figure


def test_template_knobs_for_vq_and_sq(store):
    from ecd.sweep import notebook_task
    t = notebook_task(kind="vq", dataset=f"npy:{store}/x.npy", k=20, max_items=0, mode="sq", dim=64, bits=4)
    assert t["params"]["method"] == "sq" and t["params"]["bits"] == 4 and "num_chunks" not in t["params"]
    t = notebook_task(kind="vq", dataset=f"npy:{store}/x.npy", k=20, max_items=0, mode="pq", dim=4, num_clusters=16)
    assert (t["params"]["num_chunks"], t["params"]["num_clusters"]) == (4, 16)
    with pytest.raises(ValueError, match="mode pq, opq or sq"):
        notebook_task(kind="vq", dataset=f"npy:{store}/x.npy", k=20, max_items=0, mode="pca")
