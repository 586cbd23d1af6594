"""A run opened once (issue 11, item 5): `ecd.runs.Run` holds the manifest, the prepared data and each split's
teacher top-k, and the pipeline passes it down. These tests count the reads during a quickstart and during the
other entry points, so a function that goes back to re-reading by run id fails here."""
import collections
import sys

import numpy as np
import pytest

from ecd.data import synthetic_vectors


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k, v in {"ECD_RESULTS_DIR": tmp_path / "results", "ECD_DATA_DIR": tmp_path / "data", "ECD_THREADS": 1,
                 "OMP_NUM_THREADS": 1, "TQDM_DISABLE": 1, "ECD_LOG_LEVEL": "WARNING"}.items():
        monkeypatch.setenv(k, str(v))
    np.save(tmp_path / "x.npy", synthetic_vectors(1200, 16, n_clusters=8, seed=3))
    return tmp_path


@pytest.fixture
def counts(monkeypatch):
    """Counters of every manifest read (not the read-modify-write inside `update_manifest`), every prepared-data
    load, every teacher top-k load (per split) and every check of a train config (`TrainConfig.check`), patched into each ecd module."""
    import importlib
    for m in ("data", "knn", "store", "train", "runs", "student", "cli", "export", "sweep"):
        importlib.import_module(f"ecd.{m}")
    import ecd
    c = collections.Counter()

    def counted(name, fn, key=None):
        def wrapper(*a, **kw):
            if name == "manifest" and sys._getframe(1).f_code.co_name == "update_manifest":
                return fn(*a, **kw)
            c[key(*a, **kw) if key else name] += 1
            return fn(*a, **kw)
        return wrapper

    def split_of(vectors, query_idx, k=100, split="test", **kw):
        return f"topk:{split}"

    wrap = {ecd.store.read_manifest: counted("manifest", ecd.store.read_manifest),
            ecd.data.load_prepared: counted("load_prepared", ecd.data.load_prepared),
            ecd.knn.teacher_topk: counted("topk", ecd.knn.teacher_topk, split_of)}
    monkeypatch.setattr(ecd.train.TrainConfig, "check", counted("check_train_config", ecd.train.TrainConfig.check))
    for mod in [m for n, m in sys.modules.items() if n == "ecd" or n.startswith("ecd.")]:
        for attr, v in list(vars(mod).items()):
            if callable(v) and any(v is f for f in wrap):
                monkeypatch.setattr(mod, attr, wrap[next(f for f in wrap if f is v)])
    return c


def test_quickstart_opens_the_run_once(env, counts, capsys):
    from ecd.cli import main
    assert main(["quickstart", "--run-id", "q", "--dataset", f"npy:{env}/x.npy", "--max-items", "1200", "--k", "20",
                 "--reps", "pca:8,sq:8", "--student-dim", "8", "--student-steps", "3", "--max-queries", "50"]) == 0
    assert "student" in capsys.readouterr().out
    # one manifest read (prepare_run checking what the run held before), one load of the prepared data (by prepare),
    # each top-k once (val and test computed by prepare_run, train by the student); the rest uses the open Run
    assert counts == {"manifest": 1, "load_prepared": 1, "topk:val": 1, "topk:test": 1, "topk:train": 1,
                      "check_train_config": 1}, counts


def test_run_caches_and_the_id_api(env, counts):
    from ecd.runs import Run, as_run, load_eval_data, prepare_run, run_baselines
    from ecd.student import eval_student, train_run
    m = prepare_run("r", f"npy:{env}/x.npy", k=20)
    counts.clear()
    run = Run.open("r")
    assert run.manifest == m and as_run(run) is run and as_run("r").run_id == "r" and repr(run) == "Run('r')"
    assert run.path == env / "results" / "r" and run.data_path == run.prep.path.resolve()
    ev = run.eval_data("test", 50)
    assert run.eval_data("test", 50) is ev and len(ev.query_idx) == 50
    full = run.eval_data("test")                               # another max_queries: the same top-k, sliced
    np.testing.assert_array_equal(full.truth_ids[:50], ev.truth_ids)
    assert run.truth("test") is run.truth("test") and run.truth("test").ids.shape[1] == 20
    run_baselines(run, ["pca:4"], max_queries=50)
    cfg = {"model": {"type": "linear", "out_dim": 4}, "train": {"steps": 3, "batch_size": 64, "warmup_steps": 1,
           "hard_negative": {"pool_l": 30, "tail_to": 30}}, "eval": {"every": 3, "png": False, "max_queries": 50}}
    train_run(run, cfg, verbose=False)
    df = eval_student(run, quantizers=("float32",), rerank_r=None, max_queries=50)
    assert counts == {"manifest": 1, "load_prepared": 1, "topk:test": 1, "topk:val": 1, "topk:train": 1,
                      "check_train_config": 1}, counts
    assert {"baselines", "train", "student_eval"} <= set(run.manifest)   # updates keep the open manifest current
    # the run id still works everywhere, with the same numbers
    ev2 = load_eval_data("r", "test", 50)
    np.testing.assert_array_equal(ev2.truth_ids, ev.truth_ids)
    df2 = eval_student("r", quantizers=("float32",), rerank_r=None, max_queries=50)
    assert df2["recall@10"].tolist() == df["recall@10"].tolist()
    with pytest.raises(ValueError, match="ecd prepare"):
        Run.open("never")


def test_train_combo_checks_its_config_once(env, counts):
    from ecd.runs import Run
    from ecd.sweep import run_combo
    run = Run.prepare("s", f"npy:{env}/x.npy", k=20)
    counts.clear()
    params = {"model.type": "linear", "dim": 4, "steps": 3, "batch_size": 64, "warmup_steps": 1, "pool_l": 30,
              "tail_to": 30, "eval.every": 3, "eval.max_queries": 50, "max_queries": 50, "ks": [1, 10],
              "keep_checkpoint": False}
    m = run_combo("train", params, run)
    assert m["out_dim"] == 4 and "recall@10" in m
    b = run_combo("baseline", {"spec": "pca:4", "max_queries": 50, "ks": [1, 10]}, run)
    assert "recall@10" in b
    assert counts == {"check_train_config": 1, "topk:train": 1}, counts   # val/test top-k and manifest: already open
