"""The docs home's Quickstart commands run as written, one after the other, in a temporary folder.

Opt-in (minutes: the quickstart evaluates 22 representations and trains a student): `ECD_RUN_DOC_COMMANDS=1`.
`results/` is the temporary folder's; `ECD_DATA_DIR` is kept when set, so a prepared data cache is reused. The
install (`python3.11 -m venv ... && pip install ...`) is not repeated: the `ecd` of this environment runs each line.
Every line must exit 0; what `ecd plot` and `ecd compare` say they wrote must exist.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.environ.get("ECD_RUN_DOC_COMMANDS") != "1",
                                reason="minutes long: set ECD_RUN_DOC_COMMANDS=1 to run the docs home's commands")


def quickstart_lines() -> list[str]:
    "The `ecd` commands of the docs home's Quickstart block, as written (from `ecd` on, comments kept)."
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    block = re.search(r"## Quickstart\s*\n+```bash\n(.+?)\n```", md, re.S).group(1)
    out = []
    for ln in block.splitlines():
        for part in ln.split("&&"):
            m = re.match(r"^\s*(?:\S*/)?ecd\s+(.*)$", part.strip())
            if m:
                out.append(m.group(1))
    return out


def test_docs_home_quickstart_runs_as_written(tmp_path):
    lines = quickstart_lines()
    assert [ln.split()[0] for ln in lines] == ["quickstart", "plot", "quickstart", "compare"], lines
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ECD_RESULTS_DIR": str(tmp_path / "results")}
    for ln in lines:
        argv = shlex.split(ln, comments=True)
        r = subprocess.run([sys.executable, "-c", "import sys; from ecd.cli import main; sys.exit(main())", *argv],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
        assert r.returncode == 0, f"`ecd {ln}` failed:\n{r.stderr[-3000:]}"
        for p in re.findall(r"results/[\w./-]+", ln.split("#", 1)[1] if "#" in ln else ""):  # where the line says it writes
            assert (tmp_path / p).exists(), f"`ecd {ln}` says it writes {p}, which is not there"
        if argv[0] == "compare":
            fig = r.stdout.strip().splitlines()[-1].split("figure: ")[1].split(",")[0].split()[0]
            assert Path(fig).exists() and "*" in r.stdout
