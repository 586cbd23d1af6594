"The README's two commands exist, and .ci/run runs the README's test command verbatim."
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
