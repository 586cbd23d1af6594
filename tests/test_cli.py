"""One CLI: the shared options are defined once (in `ecd.cli.OPTIONS`), `ecd --help` imports no command module, and
a user error in every command is one line `ecd NAME: error: ...` on stderr, exit 2, no traceback."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ecd import cli

PKG = Path(__file__).resolve().parents[1] / "ecd"


def _defined_flags(path: Path) -> set[str]:
    "The option strings `path` defines: the string arguments of its `add_argument(...)` and `_add(...)` calls."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("add_argument", "_add"):
            out |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return out


def test_shared_options_defined_once():
    "Each spelling of a shared option is defined in `ecd.cli.OPTIONS` alone: no parser adds it by hand."
    shared = [f for o in cli.OPTIONS.values() for f in o["flags"]]
    assert len(shared) == len(set(shared))
    for p in PKG.rglob("*.py"):
        if p.name != "_modidx.py":
            assert not (_defined_flags(p) & set(shared)), (p, _defined_flags(p) & set(shared))
    # and the quoted flag itself appears in one file only, except where a message names it (check_count's flag)
    src = (PKG / "cli.py").read_text()
    assert src.count('"--run-id"') == 1 and '"--run_id"' in src


def test_modules_do_not_import_the_cli():
    for p in PKG.rglob("*.py"):
        if p.name not in ("cli.py", "_modidx.py"):
            assert not re.search(r"from \.+cli import|from ecd\.cli import|import ecd\.cli", p.read_text()), p


def test_help_imports_no_command_module():
    code = ("import sys, contextlib, io\nfrom ecd.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try: main(['--help'])\n    except SystemExit as e: assert e.code == 0\n"
            "assert 'e2e-small' in out.getvalue() and 'retrieval' in out.getvalue()\n"
            "heavy = [m for m in ('torch', 'sentence_transformers', 'ecd.student', 'ecd.export', 'ecd.deploy', 'ecd.apps.cascade') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_every_command_has_a_parser_and_help():
    p = cli.build_parser()
    sub = p._subparsers._group_actions[0]
    assert list(sub.choices) == list(cli.COMMANDS)
    assert [a.help for a in sub._choices_actions] == [h for _, h in cli.COMMANDS.values()]


def test_add_options_changes_and_unknown_names():
    import argparse
    p = argparse.ArgumentParser(prog="x")
    cli.add_options(p, "k", "max_queries", k={"default": 10, "help": "neighbors shown (default 10: why)"})
    a = p.parse_args([])
    assert (a.k, a.max_queries) == (10, 1000)
    with pytest.raises(KeyError):
        cli.add_options(p, "seed", sed={"default": 1})
    with pytest.raises(KeyError):
        cli.add_options(p, "no_such_option")


BAD = {   # one user error per command: (argv, a word the message must hold)
    "quickstart": (["quickstart", "--max-queries", "-1"], "--max-queries -1"),
    "prepare": (["prepare", "--dataset", "npy:{tmp}/missing.npy", "--run-id", "p"], "missing.npy"),
    "baselines": (["baselines", "--run-id", "nope"], "nope"),
    "sanity": (["sanity", "--run-id", "nope"], "nope"),
    "train": (["train", "--run-id", "nope", "--override", "loss.tau_student=0.1"], "loss.tau_student"),
    "eval": (["eval", "--run-id", "nope"], "nope"),
    "sweep": (["sweep", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
    "sweep-dim-out": (["sweep-dim-out", "--steps", "5", "--epochs", "2"], "--steps or --epochs"),
    "vq": (["vq", "sweep", "--k", "0"], "--k 0"),
    "plot": (["plot", "--run-id", "nope"], "no run 'nope'"),
    "compare": (["compare", "nope"], "nope"),
    "retrieval": (["retrieval", "data", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
    "cascade": (["cascade", "test", "--model-dir", "{tmp}/nothing", "--test-queries", "q"], "nothing"),
    "export": (["export", "--run-id", "nope", "--rep", "pq:4x16", "--out", "{tmp}/out"], "nope"),
    "compress": (["compress", "--model", "{tmp}/nothing", "--input", "npy:{tmp}/x.npy", "--output", "{tmp}/c.npy"], "nothing"),
    "benchmark": (["benchmark", "--model", "{tmp}/nothing", "--queries", "0"], "--queries 0"),
    "e2e-small": (["e2e-small", "--steps", "0"], "--steps 0"),
}


def test_every_command_has_a_bad_input_case():
    assert set(BAD) == set(cli.COMMANDS)


@pytest.mark.parametrize("name", list(BAD))
def test_user_error_is_one_line_exit_2(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ECD_DEBUG", raising=False)
    argv, word = BAD[name]
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING")]
    want = "ecd " + " ".join(argv[:2] if name in ("vq", "retrieval", "cascade") else argv[:1]) + ": error: "
    assert len(lines) == 1 and lines[0].startswith(want) and word in lines[0], err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    assert cli.main(["sweep-dim-out", "--steps", "5", "--epochs", "2", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("ecd sweep-dim-out: error: ")
