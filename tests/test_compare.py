"""`ecd compare RUN [RUN ...]` (the runs' fronts side by side, from the store), the shared presets of `ecd baselines`,
`ecd quickstart` and `ecd sweep`, and the defaults that agree across commands. Tiny synthetic data throughout."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecd.cli import build_parser, main
from ecd.data import synthetic_vectors
from ecd.runs import PRESETS, preset_specs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECD_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ECD_THREADS", "1")
    np.save(tmp_path / "x.npy", synthetic_vectors(1200, 32, n_clusters=8, seed=3))
    np.save(tmp_path / "y.npy", synthetic_vectors(1200, 32, n_clusters=8, seed=4))
    return tmp_path


def _ecd(*args, env=None):
    return subprocess.run([sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}, timeout=600)


def test_compare_two_runs_table_figure_and_unknown_run(store, capsys):
    for rid, f in (("a", "x"), ("b", "y")):
        assert main(["prepare", "--run-id", rid, "--dataset", f"npy:{store}/{f}.npy", "--k", "20"]) == 0
        assert main(["baselines", "--run-id", rid, "--preset", "quick", "--max-queries", "50"]) == 0
    capsys.readouterr()
    assert main(["compare", "a", "b", "--no-png"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(ln for ln in lines if ln.lstrip().startswith("bytes_per_vector"))
    assert "a recall@10" in head and "b recall@10" in head and "a ms/query" in head and "b name" in head
    assert "*" in out                                          # the best run at each budget is marked
    fig = Path(lines[-1].split("figure: ")[1].split(",")[0].split()[0])
    assert fig == store / "results" / "compare" / "a_vs_b" / "fronts.html" and fig.exists()
    html = fig.read_text()
    assert "plotly.min.js" in html and len(html) < 200_000     # loads the results tree's plotly.js, not embedded
    # an unknown run: exit 2, one line naming it, the runs there and the fix; no traceback (through the real command)
    r = _ecd("compare", "a", "nope", env={"ECD_RESULTS_DIR": str(store / "results")})
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "no run 'nope'" in r.stderr and "runs there: a, b" in r.stderr
    assert "Traceback" not in r.stderr and "ecd baselines --run-id nope" in r.stderr
    r = _ecd("compare", env={"ECD_RESULTS_DIR": str(store / "results")})
    assert r.returncode == 2 and "RUN" in r.stderr             # argparse: a run is required


def test_presets_are_one_table_shared_by_baselines_quickstart_and_sweep():
    for cmd in ("baselines", "quickstart"):                         # each command's real parser (build_parser(cmd))
        sub = next(a for a in build_parser(cmd)._actions if isinstance(a, argparse._SubParsersAction))
        act = next(a for a in sub.choices[cmd]._actions if a.dest == "preset")
        assert list(act.choices) == list(PRESETS) == ["quick", "frontier", "full"]
        assert all(f"{n}:" in act.help for n in PRESETS), act.help   # the help lists each preset and what it is
    with pytest.raises(SystemExit):
        main(["sweep", "--preset", "fast"])                        # the same choices
    assert len(preset_specs("quick", 384)) < len(preset_specs("frontier", 384)) < len(preset_specs("full", 384))


def test_preset_with_shape_flags_is_refused(store, capsys):
    assert main(["prepare", "--run-id", "a", "--dataset", f"npy:{store}/x.npy", "--k", "20"]) == 0
    capsys.readouterr()
    assert main(["baselines", "--run-id", "a", "--preset", "quick", "--modes", "pq"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--modes" in err and "--preset full" in err


def test_sweep_preset_runs_the_preset_specs(store, capsys):
    assert main(["prepare", "--run-id", "a", "--dataset", f"npy:{store}/x.npy", "--k", "20"]) == 0
    rc = main(["sweep", "--run-id", "a", "--preset", "quick", "--override", "sweep.max_queries=40"])
    out = capsys.readouterr().out
    assert rc == 0
    specs = preset_specs("quick", 32)
    assert (store / "results" / "a" / "preset_quick" / "summary.parquet").exists()
    import pandas as pd
    summ = pd.read_parquet(store / "results" / "a" / "preset_quick" / "summary.parquet")
    assert sorted(summ["spec"]) == sorted(specs) and (summ["status"] == "done").all()
    assert "Sweep ID:" in out


def test_defaults_agree_across_commands():
    "sweep-dim-out reports recall@10 and trains the train config's steps, as every other command; vq takes any data spec."
    seen = {}
    for cmd in ("sweep-dim-out", "vq"):
        sub = next(a for a in build_parser(cmd)._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[cmd]
        if cmd == "vq":
            p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["sweep"]
        seen[p.prog] = {a.dest: a for a in p._actions}
    dim = seen["ecd sweep-dim-out"]
    assert dim["k"].default == 10 and dim["steps"].default is None and dim["epochs"].default == 0
    assert "600" in dim["steps"].help
    vq = seen["ecd vq sweep"]["dataset"]
    assert vq.default == "glove-words-minilm"
    from ecd.data import SPEC_FORMS
    assert all(s in vq.help for s in SPEC_FORMS) and "huggingface" not in vq.help
    from ecd.sweep.combos import HF_DEFAULT, resolve_dataset
    assert resolve_dataset("huggingface") == HF_DEFAULT            # the old name still works


def test_plot_errors_speak_shell(tmp_path, monkeypatch):
    "`ecd plot`'s errors name flags and commands, never a Python call."
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path))
    (tmp_path / "empty").mkdir()
    for argv in (["plot", "--run-id", "nope"], ["plot", "--run-id", "empty"], ["plot"]):
        r = _ecd(*argv, env={"ECD_RESULTS_DIR": str(tmp_path)})
        assert r.returncode == 2, (argv, r.stderr)
        assert len([ln for ln in r.stderr.splitlines() if ln.startswith("ecd plot")]) == 1, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert "make_plots" not in r.stderr and "png=False" not in r.stderr and "import " not in r.stderr, r.stderr
