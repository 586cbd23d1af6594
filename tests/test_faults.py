"""Nothing lost, nothing doubled, no orphans (issue 12): concurrent `ecd baselines`, sweep reruns, a full disk
(injected everywhere; a real 2 MiB tmpfs where the test may mount one), a read-only results folder, truncated
checkpoints and model files, SIGKILL of a sweep driver. Tiny synthetic data throughout."""
import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecd.core import CorruptFileError, DiskFullError, StorageError
from ecd.store import read_metrics, read_runs, write_metrics
from ecd.data import synthetic_vectors
from ecd.sweep import ensure_run, load_sweep_config, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def fill_disk(path) -> None:
    "Write zeros to `path` until its disk is full, to the last byte."
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    for block in (65536, 512, 1):
        try:
            while os.write(fd, b"\0" * block):
                pass
        except OSError:
            pass
    os.close(fd)


def checksums(*roots) -> dict:
    "sha256 of every file under `roots` (lock files left out: they hold nothing)."
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file() and not p.name.endswith(".lock"):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temp_files(*roots) -> list:
    return [str(p) for root in roots for p in Path(root).rglob("*") if p.name.endswith(".tmp")]


def ecd(*args, env=None, timeout=180):
    "Run the `ecd` command in a fresh interpreter; returns the CompletedProcess."
    return subprocess.run([sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


class Done:
    "What `ecd_here` returns: the exit code and stderr of one `ecd` command run in this process."
    def __init__(self, returncode, stderr): self.returncode, self.stderr = returncode, stderr


def ecd_here(capfd, *args, env=None):
    "Run `ecd ARGS` in this process (no interpreter start-up: seconds less per call), with `env` set for the call."
    from ecd.cli import main
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        capfd.readouterr()
        rc = main([str(a) for a in args])
        return Done(rc, capfd.readouterr().err)
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECD_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ECD_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ECD_PROGRESS", "0")
    np.save(tmp_path / "x.npy", synthetic_vectors(600, 16, n_clusters=8, seed=3))
    ensure_run("tiny", f"npy:{tmp_path}/x.npy", k=20)
    return tmp_path


def tiny_cfg(store, grid="{mode: [pca, rp], dim: [4, 8]}"):
    return load_sweep_config(overrides=[f"sweep.dataset=npy:{store}/x.npy", "sweep.k=20", "sweep.max_queries=30",
                                        f"sweep.grid={grid}"])


# ---------------------------------------------------------------- nothing doubled, nothing lost

def test_sweep_rerun_and_baselines_rerun_add_no_rows(store, capfd):
    "Issue 12, item 2: pca table 3 -> 5 -> 7 rows. Now baseline and sweep rows of one representation are one row."
    r0 = ecd_here(capfd, "baselines", "--run-id", "tiny", "--modes", "pca", "--dims", "4,8", "--max-queries", "30")
    assert r0.returncode == 0, r0.stderr
    n0 = len(read_metrics("tiny", mode="pca"))
    assert n0 == 2
    counts = []
    for _ in range(3):  # a fresh sweep id each time: every combo reused from the first
        r = run_sweep(tiny_cfg(store, "{mode: [pca], dim: [4, 8, 12]}"), run_id="tiny", figures=False)
        counts.append(len(read_metrics("tiny", mode="pca")))
    assert r.counts["reused"] == 3 and counts == [3, 3, 3]  # pca_d12 added once; d4/d8 replaced, not doubled
    assert ecd_here(capfd, "baselines", "--run-id", "tiny", "--modes", "pca", "--dims", "4,8", "--max-queries", "30").returncode == 0
    t = read_metrics("tiny", mode="pca")
    assert len(t) == 3 and not t.duplicated(["name", "scope", "stage", "backend", "k"]).any()


def test_two_concurrent_baselines_keep_every_row(store):
    "Issue 12, item 1: two `ecd baselines --run-id race --modes pca` at once kept 19-24 of 24 rows."
    env = dict(os.environ)
    dims = [list(range(1, 9)), list(range(1, 9))]
    ps = [subprocess.Popen([sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())", "baselines",
                            "--run-id", "tiny", "--modes", mode, "--dims", ",".join(map(str, d)), "--max-queries", "20"],
                           env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
          for mode, d in zip(("pca", "pca"), dims)]
    errs = [p.communicate(timeout=240)[1] for p in ps]
    assert [p.returncode for p in ps] == [0, 0], errs
    t = read_metrics("tiny", mode="pca")
    assert sorted(t["name"]) == sorted(f"pca_d{d}" for d in range(1, 9))


def _writer(results, w, n):
    os.environ["ECD_RESULTS_DIR"] = results
    for i in range(n):
        write_metrics("race", pd.DataFrame([{"mode": "pq", "name": f"w{w}_{i:02d}", "recall@10": i / n}]))


def _reader(results, stop_after):
    os.environ["ECD_RESULTS_DIR"] = results
    t0, reads = time.time(), 0
    while time.time() - t0 < stop_after:
        read_metrics("race", mode="pq")
        reads += 1
    # every read succeeded (a torn file raises above); leave without interpreter teardown, where a loaded fresh-clone
    # CI once saw this process abort ("terminate called without an active exception") after all its reads
    os._exit(0)


def test_four_processes_x_25_write_metrics_every_row_present(tmp_path):
    "Issue 12, item 1: 4 x 25 writes lost 51-64 rows and 13 of 300 calls crashed on a torn file."
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    res = str(tmp_path / "results")
    ps = [ctx.Process(target=_writer, args=(res, w, 25)) for w in range(4)]
    ps.append(ctx.Process(target=_reader, args=(res, 8.0)))  # a reader all along: never a torn file
    for p in ps: p.start()
    for p in ps: p.join(180)
    assert [p.exitcode for p in ps] == [0] * 5
    os.environ["ECD_RESULTS_DIR"] = res
    try:
        t = read_metrics("race", mode="pq")
    finally:
        del os.environ["ECD_RESULTS_DIR"]
    assert len(t) == 100 and sorted(t["name"]) == sorted(f"w{w}_{i:02d}" for w in range(4) for i in range(25))


# ---------------------------------------------------------------- faults: full disk, read-only, truncated files

def test_disk_full_injected_in_metrics_and_manifest_writes(store, monkeypatch):
    "ENOSPC injected into the atomic write: the error names the table and the bytes needed; earlier files intact."
    write_metrics("tiny", pd.DataFrame([{"mode": "pq", "name": "pq_a", "recall@10": 0.5}]))
    before = checksums(store / "results")
    real = Path.write_bytes
    def full(self, data):
        real(self, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")
    from ecd.store import update_manifest
    with monkeypatch.context() as mp:
        mp.setattr(Path, "write_bytes", full)
        with pytest.raises(DiskFullError, match=r"metrics\.parquet: it needed [0-9.]+ (B|KiB)") as e:
            write_metrics("tiny", pd.DataFrame([{"mode": "pq", "name": "pq_b", "recall@10": 0.6}]))
        assert "ECD_RESULTS_DIR" in str(e.value)
        with pytest.raises(DiskFullError, match="manifest.json"):
            update_manifest("tiny", note="x")
    assert checksums(store / "results") == before and not temp_files(store)
    assert list(read_metrics("tiny", mode="pq")["name"]) == ["pq_a"]


def test_cli_turns_os_and_sqlite_errors_into_exit_2(store, monkeypatch, capsys):
    "A full disk met anywhere (a raw OSError, SQLite's 'database or disk is full', torch's failed write) -> exit 2, no traceback."
    import sqlite3
    from ecd import cli, runs
    for exc, want in ((OSError(errno.ENOSPC, "No space left on device", str(store / "data" / "x.npy")), "No space left"),
                      (OSError(errno.EROFS, "Read-only file system", str(store / "results" / "tiny")), "read-only"),
                      (sqlite3.OperationalError("database or disk is full"), "runs.db"),
                      (sqlite3.OperationalError("database is locked"), "stayed locked"),
                      (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"), "disk is probably full")):
        def boom(*a, _e=exc, **k): raise _e
        monkeypatch.setattr(runs, "run_baselines", boom)
        assert cli.main(["baselines", "--run-id", "tiny", "--modes", "pca"]) == 2
        err = capsys.readouterr().err
        assert want in err and "Traceback" not in err, err
        assert cli.main(["baselines", "--run-id", "tiny", "--modes", "pca", "--debug"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and want in err
    monkeypatch.setattr(runs, "run_baselines", lambda *a, **k: 1 / 0)  # a bug keeps its traceback
    with pytest.raises(ZeroDivisionError):
        cli.main(["baselines", "--run-id", "tiny", "--modes", "pca"])


def test_read_only_results_folder_injected(store, monkeypatch):
    before = checksums(store / "results")
    import ecd.core as core
    def ro(*a, **k): raise OSError(errno.EROFS, "Read-only file system")
    with monkeypatch.context() as mp:
        mp.setattr(core.tempfile, "mkstemp", ro)
        with pytest.raises(StorageError, match="read-only file system"):
            write_metrics("tiny", pd.DataFrame([{"mode": "pq", "name": "pq_b", "recall@10": 0.6}]))
    assert checksums(store / "results") == before


def _small_checkpoint(d: Path):
    import torch
    from ecd.models import build_model
    m = build_model({"type": "linear", "in_dim": 8, "out_dim": 4})
    d.mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "final.pt", "last.pt"):
        torch.save({"model": m.state_for_checkpoint(), "config": {}, "step": 1}, d / name)
    return m


def test_truncated_checkpoint_and_npz_name_the_file_and_alternatives(tmp_path):
    pytest.importorskip("torch")
    from ecd.models import export_npz, load_npz
    from ecd.train import load_trained
    d = tmp_path / "train"
    m = _small_checkpoint(d)
    load_trained(d / "best.pt")  # intact
    (d / "best.pt").write_bytes((d / "best.pt").read_bytes()[:300])
    with pytest.raises(CorruptFileError) as e:
        load_trained(d / "best.pt")
    msg = str(e.value)
    assert str(d / "best.pt") in msg and str(d / "final.pt") in msg and str(d / "last.pt") in msg and "ecd train" in msg
    export_npz(m, d / "compressor_model.npz")
    load_npz(d / "compressor_model.npz")
    (d / "compressor_model.npz").write_bytes((d / "compressor_model.npz").read_bytes()[:200])
    with pytest.raises(CorruptFileError, match=r"compressor_model\.npz is truncated or damaged.*best\.pt.*--ckpt"):
        load_npz(d / "compressor_model.npz")
    (d / "empty.pt").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty.pt"):
        load_trained(d / "empty.pt")


def test_cli_eval_of_truncated_checkpoint_exits_2(store, capfd):
    d = store / "results" / "tiny" / "train"
    _small_checkpoint(d)
    (d / "best.pt").write_bytes((d / "best.pt").read_bytes()[:300])
    before = checksums(store / "results")
    r = ecd_here(capfd, "eval", "--run-id", "tiny", "--ckpt", d / "best.pt", "--quantizers", "float32")
    assert r.returncode == 2 and "truncated or damaged" in r.stderr and "final.pt" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and checksums(store / "results") == before


# ---------------------------------------------------------------- a real full disk: a 2 MiB tmpfs

@pytest.fixture
def tiny_disk(tmp_path):
    "A 2 MiB tmpfs (root on Linux only; skipped elsewhere)."
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_two_mib_tmpfs_for_results_and_data(tmp_path, tiny_disk, capfd):
    "ECD_RESULTS_DIR / ECD_DATA_DIR on a 2 MiB disk: every failure exit 2 with the path and sizes; nothing half-written."
    env = {**os.environ, "ECD_RESULTS_DIR": str(tiny_disk / "results"), "ECD_DATA_DIR": str(tiny_disk / "data"),
           "ECD_THREADS": "1", "OMP_NUM_THREADS": "1", "ECD_LOG_LEVEL": "WARNING", "ECD_PROGRESS": "0"}
    np.save(tmp_path / "small.npy", synthetic_vectors(400, 16, n_clusters=8, seed=1))
    np.save(tmp_path / "big.npy", synthetic_vectors(8000, 64, n_clusters=8, seed=2))  # 2 MiB of float32: cannot fit
    r = ecd_here(capfd, "prepare", "--run-id", "small", "--dataset", f"npy:{tmp_path}/small.npy", "--k", "10", env=env)
    assert r.returncode == 0, r.stderr
    r = ecd_here(capfd, "baselines", "--run-id", "small", "--modes", "pca", "--dims", "4", env=env)
    assert r.returncode == 0, r.stderr
    before = checksums(tiny_disk)
    r = ecd_here(capfd, "prepare", "--run-id", "big", "--dataset", f"npy:{tmp_path}/big.npy", "--k", "10", env=env)
    assert r.returncode == 2 and "No space left" in r.stderr and str(tiny_disk) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "free" in r.stderr
    assert checksums(tiny_disk) == before and not temp_files(tiny_disk)
    # the disk filled to the last byte: the metrics table, the manifest and the run log all fail cleanly
    filler = tiny_disk / "filler"
    fill_disk(filler)
    before = checksums(tiny_disk / "results")
    r = ecd_here(capfd, "baselines", "--run-id", "small", "--modes", "pca", "--dims", "8", env=env)
    assert r.returncode == 2 and "No space left" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "metrics.parquet" in r.stderr and "needed" in r.stderr
    from ecd.cli import user_error
    from ecd.store import log_run
    os.environ.update(ECD_RESULTS_DIR=env["ECD_RESULTS_DIR"])
    try:
        with pytest.raises(ValueError) as e:  # the run log, new on a full disk
            log_run("s", "000", status="done", metrics={"x": "y" * 200000})
    finally:
        os.environ["ECD_RESULTS_DIR"] = str(tmp_path / "elsewhere")
    msg = str(user_error(e.value))
    assert "runs.db" in msg and ("No space left" in msg or "cannot be written" in msg), msg
    assert checksums(tiny_disk / "results") == before and not temp_files(tiny_disk)
    filler.unlink()
    # read-only: remount, the command says so, the tables stay as they were
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    before = checksums(tiny_disk)
    r = ecd_here(capfd, "baselines", "--run-id", "small", "--modes", "pca", "--dims", "8", env=env)
    assert r.returncode == 2 and "read-only" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert checksums(tiny_disk) == before


# ---------------------------------------------------------------- orphans: SIGKILL of the sweep driver

def _descendants(pid: int) -> list:
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs) -> list:
    import psutil
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_sigkill_of_sweep_driver_leaves_no_worker(store, executor):
    "Issue 12, item 4: after kill -9 of `ecd sweep --executor process --workers 2`, its workers lived on under PID 1."
    if executor == "dask":
        pytest.importorskip("distributed")
    grid = "{mode: [pca, rp, trunc], dim: [2, 4, 6, 8, 10, 12]}"
    args = ["sweep", "--run-id", "tiny", "--executor", executor, "--workers", "2", "--sweep-id", f"killed_{executor}",
            "--override", f"sweep.dataset=npy:{store}/x.npy", "--override", "sweep.k=20",
            "--override", "sweep.max_queries=30", "--override", f"sweep.grid={grid}"]
    p = subprocess.Popen([sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())", *args],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    workers, t0 = [], time.time()
    while time.time() - t0 < 120:  # wait until the workers exist (and have started on combos for the process pool)
        kids = _descendants(p.pid)
        workers = [k for k in kids if "resource_tracker" not in " ".join(k.cmdline())]
        if len(workers) >= 2 and len(read_runs(f"killed_{executor}")):
            break
        time.sleep(0.2)
    assert len(workers) >= 2, f"the sweep never started its workers ({p.poll()=})"
    kids = _descendants(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    t0 = time.time()
    while _alive(kids) and time.time() - t0 < 15:
        time.sleep(0.2)
    left = _alive(kids)
    for k in left:  # don't leave them to the next test either
        k.kill()
    assert not left, [(k.pid, k.cmdline()) for k in left]
    # a rerun of the same sweep never waits on orphans: the dead driver's rows become 'interrupted', then run
    t0 = time.time()
    r = run_sweep(tiny_cfg(store, grid), run_id="tiny", sweep_id=f"killed_{executor}", executor="inline", figures=False)
    assert r.counts["failed"] == 0 and set(read_runs(f"killed_{executor}")["status"]) == {"done"}
    assert time.time() - t0 < 120


# ---------------------------------------------------------------- the deploy side (issue 22): export, compress, train

@pytest.fixture
def exported(store, capfd):
    "The tiny run with pca/pq rows and an export of pq_m4_k256 at exports/pq; returns the tmp folder."
    r = ecd_here(capfd, "baselines", "--run-id", "tiny", "--modes", "pca,pq", "--dims", "4", "--pq-chunks", "4",
                 "--pq-clusters", "16", "--max-queries", "30")
    assert r.returncode == 0, r.stderr
    r = ecd_here(capfd, "export", "--run-id", "tiny", "--rep", "pq_m4_k16", "--out", store / "exports" / "pq")
    assert r.returncode == 0, r.stderr
    return store


def one_line_error(r, *words):
    "Exit 2, one line on stderr (warnings aside) naming every word, no traceback."
    lines = [x for x in r.stderr.splitlines() if "error:" in x]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert str(w) in lines[0], (w, lines[0])
    return lines[0]


def test_export_refuses_an_out_that_is_not_an_export(exported, capfd):
    "A folder of other files, a file, a link, an export folder with a damaged card: exit 2 naming --out and --force."
    ex = exported / "exports"
    (ex / "mydir").mkdir()
    (ex / "mydir" / "important.txt").write_text("precious\n")
    (ex / "victim.txt").write_text("victim\n")
    os.symlink(ex / "mydir", ex / "link")
    (ex / "broken").mkdir()
    (ex / "broken" / "card.json").write_text('{"format": "ecd.export/1", ')
    before = checksums(ex)
    for out in ("mydir", "victim.txt", "link", "broken"):
        r = ecd_here(capfd, "export", "--run-id", "tiny", "--rep", "pca_d4", "--out", ex / out)
        one_line_error(r, f"--out {ex / out} exists and is not an ecd export folder", "--force")
    assert checksums(ex) == before and not temp_files(exported)
    assert sorted(os.listdir(ex)) == ["broken", "link", "mydir", "pq", "victim.txt"]


def test_export_force_and_reexport_keep_what_ecd_did_not_write(exported, capfd):
    ex = exported / "exports"
    (ex / "mydir").mkdir()
    (ex / "mydir" / "important.txt").write_text("precious\n")
    (ex / "victim.txt").write_text("victim\n")
    (ex / "pq" / "notes.txt").write_text("my notes\n")   # a person's file inside an earlier export
    old_index = (ex / "pq" / "index.faiss").read_bytes()
    for out in ("mydir", "victim.txt"):
        r = ecd_here(capfd, "export", "--run-id", "tiny", "--rep", "pca_d4", "--out", ex / out, "--force")
        assert r.returncode == 0, r.stderr
    assert (ex / "mydir" / "important.txt").read_text() == "precious\n" and (ex / "mydir" / "card.json").exists()
    kept = [p for p in ex.iterdir() if p.name.startswith("victim.txt.replaced-")]
    assert len(kept) == 1 and kept[0].read_text() == "victim\n" and (ex / "victim.txt" / "index.faiss").exists()
    r = ecd_here(capfd, "export", "--run-id", "tiny", "--rep", "pca_d4", "--out", ex / "pq")  # over an earlier export
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(ex / "pq")) == ["README.md", "card.json", "index.faiss", "notes.txt"]
    assert (ex / "pq" / "notes.txt").read_text() == "my notes\n" and (ex / "pq" / "index.faiss").read_bytes() != old_index
    assert '"name": "pca_d4"' in (ex / "pq" / "card.json").read_text()
    assert not temp_files(exported) and not [p for p in ex.iterdir() if p.name.startswith(("pq.replaced", "mydir.replaced"))]


def test_compress_refuses_an_output_that_is_its_input(exported, capfd):
    d = exported
    os.symlink(d / "x.npy", d / "link.npy")
    os.link(d / "x.npy", d / "hard.npy")
    before = checksums(d / "x.npy")
    for inp, out in (("x.npy", "x.npy"), ("link.npy", "x.npy"), ("x.npy", "link.npy"), ("hard.npy", "x.npy")):
        r = ecd_here(capfd, "compress", "--model", d / "exports" / "pq", "--input", f"npy:{d / inp}", "--output", d / out)
        one_line_error(r, f"--output {d / out} is the input file", "Write to another file")
    assert checksums(d / "x.npy") == before and not temp_files(d)


def test_sigkill_of_compress_leaves_a_temp_the_rerun_deletes(exported, capfd):
    "A compress killed mid-write left a full-size hidden temp file beside the output; the next run deletes it."
    d = exported
    model, out = d / "exports" / "pq", d / "codes.npy"
    r = ecd_here(capfd, "compress", "--model", model, "--input", f"npy:{d}/x.npy", "--output", out)
    assert r.returncode == 0, r.stderr
    before, full = checksums(out), out.stat().st_size
    slow = (f"import time, ecd.export as ex, ecd.deploy as dp\nreal = ex.Compressor.compress\n"
            f"def slow(self, x, what='auto'):\n    time.sleep(0.05)\n    return real(self, x, what)\n"
            f"ex.Compressor.compress = slow\ndp.compress_file({str(model)!r}, 'npy:{d}/x.npy', {str(out)!r}, batch_size=10)\n")
    for _ in range(2):  # repeated kills pile nothing up
        p = subprocess.Popen([sys.executable, "-c", slow], cwd=ROOT, env=dict(os.environ))
        t0 = time.time()
        while not any(f".codes.npy.{p.pid}." in f for f in temp_files(d)) and time.time() - t0 < 60:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        left = temp_files(d)
        assert len(left) == 1 and f".{p.pid}." in left[0] and Path(left[0]).stat().st_size == full, left  # full size
        assert checksums(out) == before
    r = ecd_here(capfd, "compress", "--model", model, "--input", f"npy:{d}/x.npy", "--output", out, "--max-items", "100")
    assert r.returncode == 0, r.stderr
    assert not temp_files(d) and len(np.load(out)) == 100


def test_two_trainings_of_one_run_and_tag_at_once(store):
    "Issue 22: two `ecd train` on one run and tag both exited 0, best.pt of one beside final.pt of the other."
    import torch
    env = dict(os.environ)
    args = ["train", "--run-id", "tiny", "--tag", "t", "--override", "train.steps=300", "--override", "model.out_dim=4",
            "--override", "eval.png=false"]
    first = subprocess.Popen([sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())", *args,
                              "--override", "train.seed=1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    out = store / "results" / "tiny" / "train" / "t"
    t0 = time.time()
    while not (out / ".train.holder.json").exists() and time.time() - t0 < 120 and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1]
    second = ecd(*args, "--override", "train.seed=2", env=env)
    line = one_line_error(second, f"{out} is being trained into by process {first.pid}", "train.seed=1", "--tag t-2")
    assert "Wait for it to finish" in line
    assert first.wait(240) == 0, first.communicate()[1]
    seeds = {name: torch.load(out / name, weights_only=False)["config"]["train"]["seed"]
             for name in ("best.pt", "final.pt", "last.pt")}
    assert seeds == {"best.pt": 1, "final.pt": 1, "last.pt": 1}
    before = checksums(out)  # a later training of the same folder runs as before
    assert not (out / ".train.holder.json").exists()
    r = ecd(*args, "--override", "train.seed=2", "--override", "train.steps=20", env=env)
    assert r.returncode == 0, r.stderr
    assert checksums(out) != before


def test_truncated_faiss_and_damaged_json_name_the_file_and_the_fix(exported, capfd):
    d = exported
    t = d / "exports" / "trunc"
    shutil_copy = __import__("shutil").copytree
    shutil_copy(d / "exports" / "pq", t)
    (t / "index.faiss").write_bytes((t / "index.faiss").read_bytes()[:100])
    before = checksums(d)
    r = ecd_here(capfd, "compress", "--model", t, "--input", f"npy:{d}/x.npy", "--output", d / "c.npy")
    one_line_error(r, f"{t / 'index.faiss'} is truncated or damaged", "--force", "ecd export")
    r = ecd_here(capfd, "benchmark", "--model", t, "--data", f"npy:{d}/x.npy", "--max-items", "300", "--queries", "20")
    one_line_error(r, f"{t / 'index.faiss'} is truncated or damaged")
    r = ecd_here(capfd, "compress", "--debug", "--model", t, "--input", f"npy:{d}/x.npy", "--output", d / "c.npy")
    assert r.returncode == 2 and "Traceback" in r.stderr
    c = d / "exports" / "card"
    shutil_copy(d / "exports" / "pq", c)
    (c / "card.json").write_text((c / "card.json").read_text().replace('"format"', "format", 1))
    before = checksums(d)
    r = ecd_here(capfd, "compress", "--model", c, "--input", f"npy:{d}/x.npy", "--output", d / "c.npy")
    one_line_error(r, f"{c / 'card.json'} is damaged: not valid JSON", "line 2 column 3", "--force")
    man = d / "results" / "tiny" / "manifest.json"
    man.write_text(man.read_text().replace('"dataset"', "dataset", 1))
    before = checksums(d)
    for args in (["baselines", "--run-id", "tiny", "--modes", "pca", "--dims", "4"],
                 ["export", "--run-id", "tiny", "--rep", "pca_d4", "--out", d / "exports" / "new"]):
        r = ecd_here(capfd, *args)
        one_line_error(r, f"{man} is damaged: not valid JSON", "ecd prepare --run-id tiny")
    assert checksums(d) == before and not temp_files(d)


def test_yaml_syntax_error_is_one_line(store, capfd):
    bad = store / "bad.yaml"
    bad.write_text("train:\n  lr: 0.001\n  steps: [100, 200\nloss:\n  x: 1\n")
    r = ecd_here(capfd, "train", "--run-id", "tiny", "--config", bad)
    one_line_error(r, f"Config file '{bad}' is not valid YAML", "line 4 column 5", "fix that line")


def test_negative_and_zero_counts_are_refused(exported, capfd):
    d = exported
    before = checksums(d)
    for args, flag in ((["baselines", "--run-id", "tiny", "--modes", "pca", "--max-queries", "-5"], "--max-queries -5"),
                       (["sanity", "--run-id", "tiny", "--max-queries", "-1"], "--max-queries -1"),
                       (["prepare", "--run-id", "tiny", "--dataset", f"npy:{d}/x.npy", "--k", "0"], "--k 0"),
                       (["compress", "--model", d / "exports" / "pq", "--input", f"npy:{d}/x.npy", "--output", d / "c.npy",
                         "--batch-size", "0"], "--batch-size 0"),
                       (["compress", "--model", d / "exports" / "pq", "--input", f"npy:{d}/x.npy", "--output", d / "c.npy",
                         "--max-items", "-3"], "--max-items -3"),
                       (["benchmark", "--model", d / "exports" / "pq", "--data", f"npy:{d}/x.npy", "--queries", "-3"],
                        "--queries -3")):
        one_line_error(ecd_here(capfd, *args), f"{flag} is not a count", "pass a positive integer")
    assert checksums(d) == before
    from ecd.runs import Run
    with pytest.raises(ValueError, match="--max-queries -5 is not a count"):
        Run.open("tiny").eval_data("test", -5)


def _unprivileged() -> list:
    "A command prefix that runs without the power to read or write any file (root drops CAP_DAC_*); [] for a plain user."
    if os.geteuid() != 0:
        return []
    import shutil
    if not shutil.which("setpriv"):
        pytest.skip("root without setpriv: cannot drop the permission override")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


def test_read_and_write_permission_problems_are_told_apart(exported):
    d = exported
    pre = _unprivileged()
    run = lambda *a: subprocess.run([*pre, sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())",
                                     *map(str, a)], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=180)
    man = d / "results" / "tiny" / "manifest.json"
    before = checksums(d)
    man.chmod(0)
    try:
        r = run("baselines", "--run-id", "tiny", "--modes", "pca", "--dims", "4")
        line = one_line_error(r, f"No permission to read {man}", "chmod u+r")
        assert "permission to write" not in line
    finally:
        man.chmod(0o644)
    (d / "x.npy").chmod(0)
    try:
        r = run("compress", "--model", d / "exports" / "pq", "--input", f"npy:{d}/x.npy", "--output", d / "c.npy")
        line = one_line_error(r, f"No permission to read {d / 'x.npy'}")
        assert "numpy.save" not in line
    finally:
        (d / "x.npy").chmod(0o644)
    folders = [p for p in (d / "results").rglob("*") if p.is_dir()] + [d / "results"]
    for p in folders:
        p.chmod(0o555)
    try:
        r = run("baselines", "--run-id", "tiny", "--modes", "pca", "--dims", "4", "--max-queries", "30")
        one_line_error(r, "No permission to write", "chmod u+w")
    finally:
        for p in folders:
            p.chmod(0o755)
    assert checksums(d) == before and not temp_files(d)


def test_export_and_compress_on_a_full_tmpfs(exported, tiny_disk, capfd):
    "A full disk under `ecd export` (faiss wrote half an index and raised) and `ecd compress`: exit 2, nothing half-written."
    d = exported
    out = tiny_disk / "export"
    r = ecd_here(capfd, "export", "--run-id", "tiny", "--rep", "pq_m4_k16", "--out", out)
    assert r.returncode == 0, r.stderr
    fill_disk(tiny_disk / "filler")
    before = checksums(tiny_disk)
    r = ecd_here(capfd, "export", "--run-id", "tiny", "--rep", "pca_d4", "--out", out)
    one_line_error(r, "No space left on the disk holding", str(out), "needed")
    r = ecd_here(capfd, "compress", "--model", out, "--input", f"npy:{d}/x.npy", "--output", tiny_disk / "c.npy",
                 "--what", "floats")
    one_line_error(r, f"No space left on the disk holding {tiny_disk / 'c.npy'}", "needed")
    assert checksums(tiny_disk) == before and not temp_files(tiny_disk)
    assert sorted(os.listdir(tiny_disk)) == ["export", "filler"]
    r = ecd_here(capfd, "compress", "--model", out, "--input", f"npy:{d}/x.npy", "--output", d / "ok.npy")
    assert r.returncode == 0, r.stderr  # the old export is intact and usable
