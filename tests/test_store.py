"""The SQLite run log (ecd.store): concurrent writers lose nothing; the run log's SQL works in the sqlite3 shell."""
import multiprocessing as mp
import shutil
import sqlite3
import subprocess

import pytest

from ecd.store import connect_runs, log_run, read_runs


def _writer(db, sweep_id, n):
    for i in range(n):
        log_run(sweep_id, f"{i:03d}", db=db, status="running", config={"i": i}, config_hash=f"{sweep_id}{i}")
        log_run(sweep_id, f"{i:03d}", db=db, status="done", metrics={"recall@10": i / n, "compression_ratio": 2.0 * i})


def test_two_processes_write_one_db(tmp_path):
    db = str(tmp_path / "runs.db")
    connect_runs(db).close()
    ctx = mp.get_context("spawn")
    ps = [ctx.Process(target=_writer, args=(db, s, 80)) for s in ("sweep_a", "sweep_b")]
    for p in ps: p.start()
    for p in ps: p.join(60)
    assert [p.exitcode for p in ps] == [0, 0]
    df = read_runs(db=db)
    assert len(df) == 160 and set(df["status"]) == {"done"}
    assert df.groupby("sweep_id").size().to_dict() == {"sweep_a": 80, "sweep_b": 80}
    assert all(r["config"]["i"] == int(r["combo_id"]) for _, r in df.iterrows())


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 shell (Debian: apt-get install -y sqlite3)")
def test_seed_002_query_in_sqlite3_shell(tmp_path):
    db = tmp_path / "runs.db"
    for i, m in enumerate((4, 8)):
        log_run("sweep_x", f"{i:03d}", db=db, status="done", config={"method": "pq", "num_chunks": m},
                metrics={"compression_ratio": 128 / m, "recall@10": 0.5 + i / 10, "distortion": float("inf")})
    q = ("SELECT config_json, json_extract(metrics_json, '$.compression_ratio'), "
         "json_extract(metrics_json, '$.recall@10') FROM runs WHERE sweep_id = 'sweep_x'")
    out = subprocess.run(["sqlite3", str(db), q], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ['{"method": "pq", "num_chunks": 4}|32.0|0.5', '{"method": "pq", "num_chunks": 8}|16.0|0.6']
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT json_extract(metrics_json, '$.distortion') FROM runs").fetchall() == [(None,), (None,)]
