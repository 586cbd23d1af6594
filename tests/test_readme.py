"The README's two commands exist, .ci/run runs the README's test command verbatim, and the README and the docs home name run ids, figure paths and representations the code has."
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick, flags=re.S)


def test_readme_has_exactly_two_commands():
    cmds = readme_commands()
    assert len(cmds) == 2, cmds
    assert all("\n" not in c for c in cmds)
    main, tests = cmds
    assert "torch==2.13.0" in main and "ecd quickstart" in main
    assert "torch==2.13.0" in tests and "pytest" in tests and "nbdev-test" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_pyproject_torch_range_admits_the_cpu_build():
    import tomllib
    from packaging.specifiers import SpecifierSet
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = [d for d in deps if d.startswith("torch")][0]
    assert "2.13.0" in SpecifierSet(torch[len("torch"):])


# The docs home (nbs/index.ipynb) and the README name the run ids, paths and representations the code has.
import json                                    # noqa: E402
import os                                      # noqa: E402
import subprocess                              # noqa: E402
import sys                                     # noqa: E402


def _docs_home_markdown() -> str:
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def _shell_lines(text: str) -> list[str]:
    "The command lines of the text's bash blocks (comment-only lines left out)."
    return [ln for block in re.findall(r"```bash\n(.+?)\n```", text, flags=re.S) for ln in block.splitlines()
            if not ln.lstrip().startswith("#")]


def test_docs_and_readme_run_ids_exist():
    "Every `--run-id X` a command reads (plot, baselines, export, ...) is written by the quickstart or a prepare line."
    from ecd.cli import build_parser
    qs = build_parser("quickstart")._subparsers._group_actions[0].choices["quickstart"]
    written = {next(a.default for a in qs._actions if a.dest == "run_id")}
    for name, text in (("docs home", _docs_home_markdown()), ("README", (ROOT / "README.md").read_text())):
        lines = _shell_lines(text)
        written |= {m for ln in lines if re.search(r"ecd (prepare|quickstart|sweep|retrieval|cascade)", ln)
                    for m in re.findall(r"--run-id (\S+)", ln)}
        for ln in lines:
            for cmd, rid in re.findall(r"ecd (plot|baselines|sanity|train|eval|export) .*?--run-id (\S+)", ln):
                assert rid in written, f"{name}: `ecd {cmd} --run-id {rid}` but no command there writes run {rid!r} ({written})"


def test_docs_and_readme_figure_paths_are_where_ecd_plot_writes():
    import pandas as pd
    from ecd.plots import run_figures
    df = pd.DataFrame([{"mode": m, "name": m, "scope": "vs_teacher", "stage": "one_stage", "backend": "exact",
                        "rep_dim": 8, "bytes_per_vector": b, "recall@10": r} for m, b, r in (("pca", 32, .5), ("pq", 8, .4))])
    subs = set(run_figures(df))                     # make_plots writes <run>/figures/<sub>/
    assert "vs_teacher" in subs
    for name, text in (("docs home", _docs_home_markdown()), ("README", (ROOT / "README.md").read_text())):
        for ln in _shell_lines(text):
            if re.search(r"ecd plot --run-id", ln):
                rid = re.search(r"--run-id (\S+)", ln).group(1)
                paths = re.findall(r"results/[^\s`]+", ln.split("#", 1)[1] if "#" in ln else "")
                assert paths, f"{name}: say where `ecd plot --run-id {rid}` writes: {ln}"
                for p in paths:
                    assert re.match(rf"results/{re.escape(rid)}/figures/({'|'.join(subs)})/", p), f"{name}: {p} in {ln}"
        assert "<mode>/figures" not in text, f"{name}: figures are not written per mode"


def _docs_home_cells() -> list[dict]:
    return json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]


def test_lists_of_representations_are_generated_from_the_code():
    """The docs home prints every spec form from `ecd.codecs.spec_forms()` (its stored output is what the code says now:
    re-save it with docs/save_outputs.sh nbs/index.ipynb), and the README's representation and preset blocks are
    what tools/gen_readme.py writes from `spec_forms()` and `ecd.runs.PRESETS`."""
    from ecd.codecs import SPEC_KNOBS, spec_forms
    cell = next(c for c in _docs_home_cells() if c["cell_type"] == "code" and "spec_forms" in "".join(c["source"]))
    shown = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    assert shown.strip() == "\n".join(spec_forms() + [SPEC_KNOBS]).strip(), "the docs home's stored spec list is stale: re-save nbs/index.ipynb"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_readme.py"), "--check"], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, "README.md's generated blocks are stale: run python tools/gen_readme.py"
    prose = "\n".join("".join(c["source"]) for c in _docs_home_cells() if c["cell_type"] == "markdown")
    assert "\\n" not in prose, "a literal \\n in the docs home's prose"


def _ecd_lines(text: str) -> list[str]:
    "Every `ecd ...` command of the text's bash blocks, as written (from `ecd` on; `.venv/bin/ecd` counts)."
    out = []
    for ln in _shell_lines(text):
        for part in re.split(r"&&|;", ln):
            m = re.match(r"^\s*(?:\S*/)?ecd\s+(.*)$", part.strip())
            if m:
                out.append(m.group(1).strip())
    return out


def _parse(argv: list[str], monkeypatch) -> None:
    "Parse `ecd ARGV` with the real parser of that command (`ecd.cli.build_parser(command)`; nothing runs)."
    from ecd.cli import build_parser
    a = build_parser(argv[0]).parse_args(argv)
    assert getattr(a, "func", None), f"`ecd {' '.join(argv)}` names no command"


def test_every_documented_command_parses_as_written(monkeypatch, capsys):
    "Every `ecd` line of the README and the docs home, exactly as written, is a command whose flags and values parse."
    import shlex
    n = 0
    for name, text in (("docs home", _docs_home_markdown()), ("README", (ROOT / "README.md").read_text())):
        for line in _ecd_lines(text):
            argv = shlex.split(line, comments=True)
            try:
                _parse(argv, monkeypatch)
            except SystemExit as e:
                raise AssertionError(f"{name}: `ecd {line}` does not parse: {capsys.readouterr().err[-500:]}") from e
            n += 1
    assert n >= 30, n


def test_deploy_recipe_says_where_new_vectors_come_from_and_exports_are_ignored():
    text = (ROOT / "README.md").read_text()
    deploy = text.split("### Deploy the chosen operating point", 1)[1].split("\n### ", 1)[0]
    lines = _shell_lines(deploy)
    first_use = next(i for i, ln in enumerate(lines) if "new_vectors.npy" in ln)
    assert "np.save('new_vectors.npy'" in lines[first_use], "the recipe must write new_vectors.npy before using it"
    out = subprocess.run(["git", "check-ignore", "-q", "exports/pq16/index.faiss"], cwd=ROOT)
    assert out.returncode == 0, "exports/ must be git-ignored"
