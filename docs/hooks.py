"""mkdocs hooks for the ecd docs site (see mkdocs.yml).

- notebooks: nbdev directives are taken out before mkdocs-jupyter renders a notebook
  (cells marked `#| hide` vanish, `#| export`-style comment lines are dropped, the stored
  outputs stay as they are);
- API reference: one generated page per module of the `ecd` package (`api/<module>.md`
  with a mkdocstrings `::: ecd.<module>` block), so a new module needs no config change;
- plotly: the site serves `assets/javascripts/plotly.min.js` (from the installed plotly) and
  pages that hold a plotly chart load it in `<head>`; CDN script tags that plotly renderers
  may have stored in a notebook are removed;
- offline check: the build fails if any page still loads a script or stylesheet from
  another host.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ecd"
PLOTLY_JS = "assets/javascripts/plotly.min.js"
# stored notebook outputs of plotly's "notebook_connected" renderer point at these CDNs
_CDN_SCRIPT = re.compile(
    r"""<script\b[^>]*\bsrc=["'](?:https?:)?//(?:cdn\.plot\.ly|cdnjs\.cloudflare\.com/ajax/libs/mathjax|"""
    r"""cdn\.jsdelivr\.net/npm/mathjax|cdnjs\.cloudflare\.com/ajax/libs/require\.js)[^"']*["'][^>]*>\s*</script>""",
    re.I)
_EXTERNAL = re.compile(
    r"""<script\b[^>]*\bsrc=["']((?:https?:)?//[^"']+)["']|"""
    r"""<link\b(?=[^>]*\brel=["'](?:stylesheet|preload|modulepreload)["'])[^>]*\bhref=["']((?:https?:)?//[^"']+)["']""",
    re.I)
_DIRECTIVE = re.compile(r"^\s*#\|\s*(.*)$")
_HIDE = {"hide", "exporti", "hide_input", "hide_output"}

_tmp: tempfile.TemporaryDirectory | None = None
_external: dict[str, list[str]] = {}


def clean_notebook(nb: dict) -> dict:
    "Drop nbdev `#| hide` cells and `#| ...` directive lines; keep every stored output."
    cells = []
    for c in nb.get("cells", []):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if c.get("cell_type") == "code":
            lines = src.splitlines()
            directives = {m.group(1).split()[0] for m in map(_DIRECTIVE.match, lines) if m and m.group(1)}
            if directives & {"hide", "exporti"}:
                continue
            body = "\n".join(l for l in lines if not _DIRECTIVE.match(l)).strip("\n")
            if "hide_input" in directives:
                c = {**c, "metadata": {**c.get("metadata", {}), "tags": ["hide"]}}
            if "hide_output" in directives:
                c = {**c, "outputs": []}
            if not body.strip() and not c.get("outputs"):
                continue
            c = {**c, "source": body}
        cells.append(c)
    return {**nb, "cells": cells}


def on_files(files, config):
    "Render cleaned copies of the notebooks; add one API page per `ecd` module."
    global _tmp
    _tmp = tempfile.TemporaryDirectory(prefix="ecd-docs-")
    tmp = Path(_tmp.name)
    for f in files:
        if f.src_path.endswith(".ipynb") and f.abs_src_path:
            nb = json.loads(Path(f.abs_src_path).read_text(encoding="utf-8"))
            out = tmp / f.src_path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(clean_notebook(nb)), encoding="utf-8")
            f.abs_src_path = str(out)
    mods = sorted(p.stem for p in (ROOT / PACKAGE).glob("*.py") if not p.stem.startswith("_"))
    links = []
    for m in mods:
        path = f"api/{m}.md"
        files.append(File.generated(config, path, content=f"# `{PACKAGE}.{m}`\n\n::: {PACKAGE}.{m}\n"))
        links.append(f"- [`{PACKAGE}.{m}`]({m}.md)")
    index = ("# API reference\n\nGenerated from the docstrings of the `ecd` package (the code exported "
             "from the notebooks). Each module's notebook page shows the same functions with examples "
             "and tests.\n\n" + "\n".join(links) + "\n")
    files.append(File.generated(config, "api/index.md", content=index))
    return files


def _relroot(page) -> str:
    depth = page.file.dest_uri.count("/")
    return "../" * depth or "./"


_EMPTY_SCRIPT = re.compile(r"""<script\s+src=["']["']\s*>\s*</script>""", re.I)  # mkdocs-jupyter's unset MathJax URL


def on_post_page(output: str, page, config):
    "Swap CDN plotly/mathjax scripts for the site's own plotly.js; record anything still external."
    output = _EMPTY_SCRIPT.sub("", _CDN_SCRIPT.sub("", output))
    if "plotly-graph-div" in output:
        tag = f'<script src="{_relroot(page)}{PLOTLY_JS}"></script>'
        output = output.replace("</head>", f"{tag}\n</head>", 1)
    ext = [a or b for a, b in _EXTERNAL.findall(output)]
    if ext:
        _external[page.file.dest_uri] = ext
    return output


def on_post_build(config):
    "Write plotly.min.js into the site; fail when a page loads anything from another host."
    from plotly.offline import get_plotlyjs
    dest = Path(config["site_dir"]) / PLOTLY_JS
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(get_plotlyjs(), encoding="utf-8")
    if _tmp is not None:
        _tmp.cleanup()
    if _external:
        lines = "\n".join(f"  {p}: {', '.join(sorted(set(u)))}" for p, u in sorted(_external.items()))
        _external.clear()
        raise PluginError("The site must work offline, but these pages load files from other hosts:\n" + lines +
                          "\nStore plotly figures with ecd.plots.use_docs_renderer() (no CDN) or serve the file from the site.")
