"""mkdocs hooks for the ecd docs site (see mkdocs.yml).

- notebooks: nbdev directives are taken out before mkdocs-jupyter renders a notebook
  (cells marked `#| hide` vanish, `#| export`-style comment lines are dropped, the stored
  outputs stay as they are);
- API reference: one generated page per module of the `ecd` package, subpackages included
  (`api/<module>.md`, e.g. `api/apps.retrieval.md`, with a mkdocstrings `::: ecd.<module>` block), so a new
  module needs no config change;
- plotly: the site serves `assets/javascripts/plotly.min.js` (from the installed plotly) and
  pages that hold a plotly chart load it in `<head>`; CDN script tags that plotly renderers
  may have stored in a notebook are removed, and so is a stored `init_notebook_mode` output that
  inlines all of plotly.js (pages stay under 1.5 MB);
- math: pages whose text holds TeX (`$...$`, `$$...$$`) load MathJax 3 (`tex-svg`, one self-contained file
  vendored in `docs/vendor/`, Apache-2.0) from `assets/javascripts/`, configured for `$` delimiters and to leave
  code, outputs and pre blocks alone;
- offline check: the build fails if any page still loads a script or stylesheet from
  another host;
- navigation: Home, then the notebooks in their numbered order under readable names (`NAV_TITLES`, not
  the module slugs), then the API reference (no "ecd > ecd", no "Api" section named after its folder);
- layout: `docs/ecd.css` (wide content column, code blocks and tables that do not wrap
  their headers) is served as `assets/ecd.css`;
- stored outputs: as the site shows them, without the build machine's paths (the checkout,
  temp folders) or Python warnings written to stderr; heading code spans are kept as text so
  the table of contents does not drop them; the module docstrings' "Docs: <url>.html.md"
  line (nbdev's pointer to a hosted llms page that this site does not have) is left out of
  the API pages.
"""
from __future__ import annotations

import ast
import json
import re
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ecd"
PLOTLY_JS = "assets/javascripts/plotly.min.js"
MATHJAX_JS = "assets/javascripts/mathjax-tex-svg.js"
MATHJAX_SRC = ROOT / "docs" / "vendor" / "mathjax-3.2.2-tex-svg.js"
MATHJAX_CONFIG = ("<script>window.MathJax = {tex: {inlineMath: [['$', '$']], displayMath: [['$$', '$$']], "
                  "processEscapes: true}, options: {skipHtmlTags: ['script', 'noscript', 'style', 'textarea', 'pre', "
                  "'code']}, svg: {fontCache: 'global'}};</script>")
_TEX = re.compile(r"\$[^$\s][^$]*?\\[A-Za-z]+[^$]*?\$")   # $...\command...$: TeX in the page's text
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

CSS = "assets/ecd.css"
_HEADING = re.compile(r"^(#{1,6}\s.*)$", re.M)
_CODE_SPAN = re.compile(r"`([^`]+)`")
_WARNING_LINE = re.compile(r"^.*\b\w*Warning\b.*$")
_TMP_PATH = re.compile(r"(?:/private)?/(?:tmp|var/folders/[^/\s]+/[^/\s]+/T)/[^/\s\"']+")
_DOCS_LINE = re.compile(r"<p>\s*Docs:\s*(?:<a [^>]*>)?https?://[^<\s]+\.html\.md(?:</a>)?\s*</p>", re.I)

_tmp: tempfile.TemporaryDirectory | None = None
_external: dict[str, list[str]] = {}


def _clean_text(text: str) -> str:
    "Output text as the site shows it: the checkout's path as `.`, temp folders as `<tmp>`."
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    return _TMP_PATH.sub("<tmp>", text)


def _embeds_plotlyjs(o: dict) -> bool:
    "Is this output plotly's `init_notebook_mode` cell (the whole plotly.js inlined, ~4.7 MB)? The site loads its one copy."
    html = o.get("data", {}).get("text/html", "")
    html = "".join(html) if isinstance(html, list) else html
    return len(html) > 500_000 and "plotly.js v" in html[:2000] and "plotly-graph-div" not in html


def clean_outputs(outputs: list) -> list:
    """Stored outputs without machine paths, stderr streams without Python warnings (a stream left empty is dropped),
    and without a copy of plotly.js inlined by `init_notebook_mode` (every page loads the site's one plotly.js)."""
    out = []
    for o in outputs:
        if _embeds_plotlyjs(o):
            continue
        o = json.loads(json.dumps(o))
        if o.get("output_type") == "stream":
            text = "".join(o.get("text", "")) if isinstance(o.get("text"), list) else o.get("text", "")
            if o.get("name") == "stderr":
                keep, skip = [], False
                for line in text.splitlines(keepends=True):
                    if _WARNING_LINE.match(line):
                        skip = True      # the warning and the source line Python prints under it
                        continue
                    if skip and line.startswith((" ", "\t")):
                        continue
                    skip = False
                    keep.append(line)
                text = "".join(keep)
            if not text.strip():
                continue
            o["text"] = _clean_text(text)
        elif "data" in o:
            o["data"] = {k: _clean_text("".join(v) if isinstance(v, list) else v) if k.startswith("text/") else v
                         for k, v in o["data"].items()}
        elif o.get("output_type") == "error":
            o["traceback"] = [_clean_text(t) for t in o.get("traceback", [])]
        out.append(o)
    return out


def clean_notebook(nb: dict) -> dict:
    """Drop nbdev `#| hide` cells and `#| ...` directive lines; keep the stored outputs (machine paths and warnings
    out, see `clean_outputs`); markdown headings lose their backticks so the table of contents keeps their words."""
    cells = []
    for c in nb.get("cells", []):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if c.get("cell_type") == "markdown":
            src = _HEADING.sub(lambda m: _CODE_SPAN.sub(
                lambda c: c.group(1).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), m.group(1)), src)
            c = {**c, "source": src}
        if c.get("cell_type") == "code":
            c = {**c, "outputs": clean_outputs(c.get("outputs", []))}
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


def _has_code(init: Path) -> bool:
    "Does this `__init__.py` hold more than a docstring?"
    body = ast.parse(init.read_text(encoding="utf-8")).body
    return any(not (isinstance(b, ast.Expr) and isinstance(getattr(b, "value", None), ast.Constant)) for b in body)


def api_modules(root: Path | None = None) -> list[str]:
    """The modules of the package that get an API page, dotted below `ecd.` (`plots`, `apps.retrieval`, `sweep`,
    `sweep.executors`): every `*.py` not starting with `_`, in subpackages too, and a subpackage itself where its
    `__init__.py` holds code (not only a docstring)."""
    root = root or ROOT / PACKAGE
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if any(part.startswith((".", "_")) for part in rel.parts[:-1]):
            continue
        if p.name == "__init__.py":
            if len(rel.parts) > 1 and _has_code(p):
                out.append(".".join(rel.parts[:-1]))
        elif not p.stem.startswith("_"):
            out.append(".".join(rel.with_suffix("").parts))
    return sorted(out)


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
    mods = api_modules()
    links = []
    for m in mods:
        path = f"api/{m}.md"
        files.append(File.generated(config, path, content=f"# `{PACKAGE}.{m}`\n\n::: {PACKAGE}.{m}\n"))
        links.append(f"- [`{PACKAGE}.{m}`]({m}.md)")
    index = ("# API reference\n\nGenerated from the docstrings of the `ecd` package (the code exported "
             "from the notebooks). Each module's notebook page shows the same functions with examples "
             "and tests.\n\n" + "\n".join(links) + "\n")
    files.append(File.generated(config, "api/index.md", content=index))
    files.append(File.generated(config, CSS, content=(ROOT / "docs" / "ecd.css").read_text(encoding="utf-8")))
    return files


def on_config(config):
    "Load the site's own stylesheet (docs/ecd.css, served as assets/ecd.css)."
    if CSS not in config["extra_css"]:
        config["extra_css"].append(CSS)
    return config


def _pages(items):
    for it in items:
        if getattr(it, "children", None):
            yield from _pages(it.children)
        elif getattr(it, "file", None) is not None:
            yield it


NAV_TITLES = {   # notebook -> its name in the navigation (a reader's words, not the module's slug)
    "00_core": "Core: paths, seeds, threads", "00a_figures": "Figure files", "00b_charts": "Charts of results", "01_config": "Configs",
    "02_data": "Data sources", "03_knn": "Teacher top-k", "04_metrics": "Metrics", "05_codecs": "Representations",
    "06_models": "Student models", "07_losses": "Ranking losses", "08_train": "Training a student",
    "08a_learned": "Learned codes", "09_evaluate": "Evaluation", "10_store": "Results store",
    "10a_runs": "Runs and baselines", "10b_student": "Student runs", "10c_export": "Exporting a compressor",
    "10e_deploy": "Compress and benchmark",
    "10d_quickstart": "Quickstart: the main job",
    "11_sweep": "Sweeps", "11a_sweep_grid": "Sweep grids", "11b_sweep_combos": "Sweep combos",
    "11c_sweep_executors": "Sweep executors", "12_plots": "Plots", "12b_compare": "Comparing runs",
    "13_explore": "Explorer (JupyterLab)", "14_retrieval": "Matryoshka retrieval", "14a_retrieval_data": "Retrieval data",
    "15_cascade": "Dimensional cascade", "16_cli": "Command line", "17_scale": "Scaling out",
}


def nav_title(stem: str, heading: str | None = None) -> str:
    "A notebook's name in the navigation: `NAV_TITLES`, else its heading with the first letter capitalized."
    if stem in NAV_TITLES:
        return NAV_TITLES[stem]
    h = (heading or stem.split("_", 1)[-1]).replace("_", " ").strip()
    return h[:1].upper() + h[1:]


def on_nav(nav, config, files):
    "Home, the notebooks in their numbered order (titled by `nav_title`), the API reference."
    from mkdocs.structure.nav import Section
    pages = list(_pages(nav.items))
    home = [p for p in pages if p.file.src_uri in ("index.md", "index.ipynb")]
    nbs = sorted((p for p in pages if p.file.src_uri.endswith(".ipynb") and p not in home), key=lambda p: p.file.src_uri)
    api = [p for p in pages if p.file.src_uri.startswith("api/")]
    api = sorted(api, key=lambda p: (p.file.src_uri != "api/index.md", p.file.src_uri))
    for p in home:
        p.title = "Home"
    for p in nbs:
        p.title = nav_title(Path(p.file.src_uri).stem, p.title)
    for p in api:
        if p.file.src_uri == "api/index.md":
            p.title = "Overview"
    rest = [p for p in pages if p not in home + nbs + api]
    items = [*home, Section("Notebooks", nbs), *([Section("API reference", api)] if api else []), *rest]
    for sec in items:
        if isinstance(sec, Section):
            for ch in sec.children:
                ch.parent = sec
        else:
            sec.parent = None
    nav.items = items
    nav.pages = [*home, *nbs, *api, *rest]
    for a, b in zip(nav.pages, nav.pages[1:]):
        a.next_page, b.previous_page = b, a
    return nav


def _relroot(page) -> str:
    depth = page.file.dest_uri.count("/")
    return "../" * depth or "./"


_EMPTY_SCRIPT = re.compile(r"""<script\s+src=["']["']\s*>\s*</script>""", re.I)  # mkdocs-jupyter's unset MathJax URL


def on_page_context(context, page, config, nav):
    "The home page is 'Home' in the navigation (its heading, the site name, stays on the page)."
    # mkdocs re-reads each page's title from its first heading when it reads the page: name every notebook page
    # again here, so the navigation drawn on this page shows the readable names of all of them
    for p in [*nav.pages, page]:
        if p.file.src_uri in ("index.md", "index.ipynb"):
            p.title = "Home"
        elif p.file.src_uri.endswith(".ipynb"):
            p.title = nav_title(Path(p.file.src_uri).stem, p.title)
    return context


_BIG_STYLE = re.compile(r"<style[^>]*>([^<]{100000,})</style>")   # mkdocs-jupyter's notebook CSS, inlined in every page


def _shared_styles(output: str, page, config) -> str:
    "Each large inline stylesheet (the same ~570 KB of notebook CSS on every notebook page) served once, linked."
    import hashlib

    def link(m):
        css = m.group(1)
        name = f"assets/nb-{hashlib.sha1(css.encode()).hexdigest()[:12]}.css"
        path = Path(config["site_dir"]) / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(css, encoding="utf-8")
        return f'<link rel="stylesheet" href="{_relroot(page)}{name}">'
    return _BIG_STYLE.sub(link, output)


def on_post_page(output: str, page, config):
    """Swap CDN plotly/mathjax scripts for the site's own plotly.js, serve the large inline notebook stylesheet once;
    record anything still external."""
    output = _EMPTY_SCRIPT.sub("", _CDN_SCRIPT.sub("", output))
    output = _shared_styles(output, page, config)
    output = _DOCS_LINE.sub("", output)
    if "plotly-graph-div" in output:
        tag = f'<script src="{_relroot(page)}{PLOTLY_JS}"></script>'
        output = output.replace("</head>", f"{tag}\n</head>", 1)
    if _TEX.search(re.sub(r"<(pre|code|script|style)\b.*?</\1>", "", output, flags=re.S)):
        tag = f'{MATHJAX_CONFIG}\n<script defer src="{_relroot(page)}{MATHJAX_JS}"></script>'
        output = output.replace("</head>", f"{tag}\n</head>", 1)
    ext = [a or b for a, b in _EXTERNAL.findall(output)]
    if ext:
        _external[page.file.dest_uri] = ext
    return output


def on_post_build(config):
    "Write plotly.min.js and MathJax into the site; fail when a page loads anything from another host."
    from plotly.offline import get_plotlyjs
    dest = Path(config["site_dir"]) / PLOTLY_JS
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(get_plotlyjs(), encoding="utf-8")
    (Path(config["site_dir"]) / MATHJAX_JS).write_bytes(MATHJAX_SRC.read_bytes())
    if _tmp is not None:
        _tmp.cleanup()
    if _external:
        lines = "\n".join(f"  {p}: {', '.join(sorted(set(u)))}" for p, u in sorted(_external.items()))
        _external.clear()
        raise PluginError("The site must work offline, but these pages load files from other hosts:\n" + lines +
                          "\nStore plotly figures with ecd.plots.use_docs_renderer() (no CDN) or serve the file from the site.")
