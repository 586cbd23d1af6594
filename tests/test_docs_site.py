"""The docs site: built offline from nbs/ by `mkdocs build --strict`, opened in headless Chromium.

Set ECD_DOCS_SITE=<folder> to check an already built site instead of building one (about 45 s).
"""
import functools
import http.server
import importlib.util
import os
import re
import shutil
import time
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                if shutil.which(n)), None)
EXTERNAL = re.compile(r"""<script\b[^>]*\bsrc=["']((?:https?:)?//[^"']+)|"""
                      r"""<link\b(?=[^>]*\brel=["']stylesheet)[^>]*\bhref=["']((?:https?:)?//[^"']+)""", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    given = os.environ.get("ECD_DOCS_SITE")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    r = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return out


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def dom(url: str) -> str:
    r = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-extensions", "--no-first-run", "--virtual-time-budget=15000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def text(html: str) -> str:
    "The visible text of a DOM dump (tags out, entities decoded)."
    import html as _html
    return _html.unescape(re.sub(r"<[^>]+>", "", html))


def test_pages_exist_and_are_offline(site):
    pages = sorted(site.rglob("*.html"))
    names = {p.relative_to(site).as_posix() for p in pages}
    nbs = {p.stem for p in (ROOT / "nbs").glob("[0-9]*.ipynb")}
    assert "index.html" in names and {f"{n}.html" for n in nbs} <= names, sorted(nbs - {n[:-5] for n in names})
    mods = {p.relative_to(ROOT / "ecd").with_suffix("").as_posix().replace("/", ".") for p in (ROOT / "ecd").rglob("*.py")
            if not p.stem.startswith("_")}
    assert "apps.retrieval" in mods and {f"api/{m}.html" for m in mods} <= names, sorted(mods - {n[4:-5] for n in names})
    assert (site / "assets/javascripts/plotly.min.js").stat().st_size > 1_000_000
    external = {p.name: EXTERNAL.findall(p.read_text(encoding="utf-8")) for p in pages}
    assert not {k: v for k, v in external.items() if v}, external
    # the API page carries the docstrings, without nbdev's dead "Docs: https://....html.md" pointer
    api = (site / "api/charts.html").read_text(encoding="utf-8")
    assert "pareto_front" in api and "Pareto-optimal rows" in api
    dead = [p.name for p in (site / "api").glob("*.html") if re.search(r"Docs:\s*(<a [^>]*>)?https?://\S+\.html\.md",
                                                                        p.read_text(encoding="utf-8"))]
    assert not dead, dead
    # the site's stylesheet (wide layout) is served and linked
    assert (site / "assets/ecd.css").exists() and "assets/ecd.css" in (site / "12_plots.html").read_text(encoding="utf-8")


def test_math_pages_load_the_sites_mathjax(site):
    "Pages with TeX load MathJax from the site (configured for $ delimiters); pages without it do not."
    assert (site / "assets/javascripts/mathjax-tex-svg.js").stat().st_size > 1_000_000
    learned = (site / "08a_learned.html").read_text(encoding="utf-8")
    assert "assets/javascripts/mathjax-tex-svg.js" in learned and "inlineMath: [['$', '$']]" in learned
    assert "mathjax-tex-svg.js" not in (site / "12_plots.html").read_text(encoding="utf-8")


def _primary_nav(page: str) -> str:
    "The HTML of the site navigation (its table of contents integrated: no right sidebar)."
    start = re.search(r'class="md-nav md-nav--primary[^"]*"', page).start()
    return page[start:page.index('class="md-content"', start)]


def test_pages_are_light(site):
    "Every page under 1.5 MB: figures load the site's one plotly.js, no page inlines a copy of it."
    big = {p.relative_to(site).as_posix(): p.stat().st_size for p in site.rglob("*.html") if p.stat().st_size > 1_500_000}
    assert not big, big
    inlined = [p.name for p in site.glob("*.html") if "* plotly.js v" in p.read_text(encoding="utf-8")]
    assert not inlined, inlined


def test_navigation_names_are_readable(site):
    "The notebooks appear under readers' names, never under their module slugs (core, knn, sweep.combos, ...)."
    page = (site / "12_plots.html").read_text(encoding="utf-8")
    nav = _primary_nav(page)
    labels = {text(m).strip() for m in re.findall(r'<span class="md-ellipsis">(.*?)</span>', nav, re.S)}
    slugs = {p.stem.split("_", 1)[1].replace("_", ".") for p in (ROOT / "nbs").glob("[0-9]*.ipynb")}
    slugs |= {p.stem.split("_", 1)[1] for p in (ROOT / "nbs").glob("[0-9]*.ipynb")}
    assert not labels & slugs, sorted(labels & slugs)
    assert {"Plots", "Comparing runs", "Command line", "Representations"} <= labels, sorted(labels)


def test_navigation(site):
    "Home, the notebooks, the API reference: no section named after a folder ('Api'), no 'ecd > ecd'."
    page = (site / "12_plots.html").read_text(encoding="utf-8")
    nav = _primary_nav(page)
    labels = [text(m).strip() for m in re.findall(r'<label class="md-nav__link"[^>]*>(.*?)</label>', nav, re.S)]
    labels += [text(m).strip() for m in re.findall(r'<span class="md-nav__link[^"]*"[^>]*>(.*?)</span>', nav, re.S)]
    assert "Notebooks" in " ".join(labels) and "API reference" in " ".join(labels), labels
    assert "Api" not in [l.split()[0] for l in labels if l], labels
    assert ">Home<" in re.sub(r"\s+", "", nav).replace("</span>", "<").replace('<spanclass="md-ellipsis">', ">")


def test_pages_show_outputs_without_machine_paths_or_warnings(site):
    "Stored outputs as a reader sees them: no build machine paths, no Python warnings; every module page has an output."
    leaks, warned = {}, {}
    for p in sorted(site.glob("*.html")):
        body = p.read_text(encoding="utf-8")
        outs = text(" ".join(seg.split('class="jp-Cell ')[0] for seg in body.split("jp-OutputArea-output")[1:]))
        found = re.findall(r"(?:%s|/tmp/[\w.-]+)" % re.escape(str(ROOT)), outs)
        if found:
            leaks[p.name] = found[:3]
        if re.search(r"\b(?:User|Future|Deprecation|Runtime)Warning\b", outs):
            warned[p.name] = True
    assert not leaks, leaks
    assert not warned, warned
    mods = sorted(p.stem for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))
    without = [m for m in mods if "jp-OutputArea-output" not in (site / f"{m}.html").read_text(encoding="utf-8")]
    assert not without, f"module pages without any stored output (run docs/save_outputs.sh): {without}"


@pytest.mark.skipif(BROWSER is None, reason="no Chromium/Chrome installed (Debian: apt-get install -y chromium)")
def test_home_and_module_page_render_in_chromium(server):
    home = dom(f"{server}/index.html")
    assert "Neighbor-preserving embedding compression" in home and "Quickstart" in home
    assert "pip install torch==2.13.0" in text(home) and "parse_rep" in text(home)  # code (markdown and cells)
    assert "js-plotly-plot" in home and "main-svg" in home   # plotly drew the Pareto chart
    page = dom(f"{server}/00b_charts.html")
    assert "The Pareto front" in page and "pareto_mask" in page
    assert page.count('class="main-svg"') >= 4
    assert "Sweeps: the SQLite run log" in dom(f"{server}/12_plots.html")
    api = dom(f"{server}/api/plots.html")
    assert "make_plots" in api and "cmd_plot" in api


def test_clean_notebook_drops_nbdev_directives():
    spec = importlib.util.spec_from_file_location("ecd_docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    nb = {"cells": [
        {"cell_type": "code", "source": "#| default_exp plots", "outputs": [], "metadata": {}},
        {"cell_type": "code", "source": "#| export\ndef f(): pass", "outputs": [], "metadata": {}},
        {"cell_type": "code", "source": "#| hide\nimport nbdev; nbdev.nbdev_export()", "outputs": [], "metadata": {}},
        {"cell_type": "markdown", "source": "# Title", "metadata": {}},
        {"cell_type": "code", "source": ["#| hide_output\n", "x = 1\n", "x"], "outputs": [{"output_type": "stream"}],
         "metadata": {}},
    ]}
    cells = hooks.clean_notebook(nb)["cells"]
    assert [c["source"] for c in cells] == ["def f(): pass", "# Title", "x = 1\nx"]
    assert cells[2]["outputs"] == []
    # headings keep their code words (as text) for the table of contents; outputs lose paths and warnings
    md = hooks.clean_notebook({"cells": [{"cell_type": "markdown", "source": "## `make_plots` into `plots/<ts>/`\ntext `x`",
                                          "metadata": {}}]})["cells"][0]["source"]
    assert md == "## make_plots into plots/&lt;ts&gt;/\ntext `x`"
    outs = hooks.clean_outputs([
        {"output_type": "stream", "name": "stderr",
         "text": f"{ROOT}/ecd/evaluate.py:168: UserWarning: few rows\n  warnings.warn(msg)\n"},
        {"output_type": "stream", "name": "stdout", "text": f"cached in /tmp/tmpab12cd/data/x and {ROOT}/results\n"}])
    assert outs == [{"output_type": "stream", "name": "stdout", "text": "cached in <tmp>/data/x and results\n"}]


@pytest.mark.skipif(BROWSER is None or not (shutil.which("chromedriver") or Path("/usr/bin/chromedriver").exists()),
                    reason="no Chromium + chromedriver")
def _chrome():
    "A headless Chromium at 1,400 x 1,000 px driven by selenium (chromedriver)."
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.binary_location = BROWSER
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium/Chrome installed (Debian: apt-get install -y chromium)")
def test_math_renders_in_chromium(server):
    "MathJax typesets the learned codes page's TeX (the norm-weighted ranking, the variants table) without errors."
    d = _chrome()
    try:
        d.get(f"{server}/08a_learned.html")
        for _ in range(100):                                   # up to 10 s for MathJax to typeset
            n = d.execute_script("return document.querySelectorAll('mjx-container').length")
            if n > 20:
                break
            time.sleep(0.1)
        errors = d.execute_script("return document.querySelectorAll('mjx-merror').length")
    finally:
        d.quit()
    assert n > 20 and errors == 0, (n, errors)


def test_wide_column_and_code_that_does_not_scroll(server, tmp_path):
    "At 1,400 px the content column is wide (> 1,000 px) and no code block of the codecs page scrolls sideways."
    d = _chrome()
    try:
        d.get(f"{server}/05_codecs.html")
        width = d.execute_script("return document.querySelector('.md-content').getBoundingClientRect().width")
        code = d.execute_script("""return [...document.querySelectorAll('.jp-InputArea pre, .md-typeset pre > code')]
            .filter(e => e.offsetParent !== null).map(e => e.scrollWidth > e.clientWidth + 1)""")
        d.save_screenshot(str(tmp_path / "codecs_1400.png"))
    finally:
        d.quit()
    assert width > 1000, width
    assert code and not any(code), f"{sum(code)} of {len(code)} code blocks scroll sideways"
