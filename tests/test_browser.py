"""The explorer in a real browser: JupyterLab driven by selenium in headless Chromium (Debian's `chromium` and
`chromium-driver`), on a small run prepared here. Runs the explorer notebook, checks that every control is visible
(the runs list and the mode filter included, the sweeps list hidden in the runs view), clicks a point of the chart
and checks that the per-query view shows that row's neighbors. Skips cleanly without a browser or driver.

About 1.5 minutes (JupyterLab start, a kernel, a 1,000-word run).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
                                               if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(BROWSER is None or DRIVER is None,
                                reason="no Chromium + chromedriver (Debian: apt-get install -y chromium chromium-driver)")
CONTROLS = ("runs", "mode", "stage", "scope", "backend", "dim", "x", "y", "point", "query")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait(f, timeout: float, what: str):
    t0, last = time.time(), None
    while time.time() - t0 < timeout:
        try:
            v = f()
            if v:
                return v
        except Exception as e:  # the page is still loading
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last!r})")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    "A folder with results/ (a prepared 1,000-word GloVe run with three baselines, two-stage rows too) and the notebook."
    w = tmp_path_factory.mktemp("lab")
    code = ("from ecd.runs import prepare_run, run_baselines\n"
            "prepare_run('gl', dataset='glove-50', max_items=1000, k=20)\n"
            "run_baselines('gl', ['pca:8', 'sq:8', 'pq:10x16'], max_queries=30, rerank_r=40)\n")
    env = {**os.environ, "ECD_DATA_DIR": str(w / "data"), "ECD_RESULTS_DIR": str(w / "results"),
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = {"cells": [{"cell_type": "code", "id": "explore", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": "from ecd.explore import explore\napp = explore('results')\napp"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (w / "explore.ipynb").write_text(json.dumps(nb))
    return w


@pytest.fixture(scope="module")
def lab(workdir):
    "JupyterLab on 127.0.0.1 (a free port, no token), its app object exposed to the page for the test."
    port = _free_port()
    env = {**os.environ, "ECD_DATA_DIR": str(workdir / "data"), "ECD_RESULTS_DIR": str(workdir / "results"),
           "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(workdir / ".jupyter"),
           "JUPYTERLAB_WORKSPACES_DIR": str(workdir / ".workspaces")}
    log = open(workdir / "lab.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
                          "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
                          "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
                          f"--ServerApp.root_dir={workdir}"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 120, "JupyterLab")
        yield f"http://127.0.0.1:{port}"
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


@pytest.fixture(scope="module")
def driver(workdir):
    o = webdriver.ChromeOptions()
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
              "--disable-dev-shm-usage", f"--user-data-dir={workdir / 'chrome'}", "--window-size=1400,1600"):
        o.add_argument(a)
    o.binary_location = BROWSER
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    d.set_page_load_timeout(120)
    yield d
    d.quit()


def _control(d, label: str):
    "The ipywidgets control whose description label is `label`, or None."
    for el in d.find_elements(By.CSS_SELECTOR, ".jupyter-widgets.widget-inline-hbox"):
        lab = el.find_elements(By.CSS_SELECTOR, "label.widget-label")
        if lab and lab[0].get_attribute("textContent").strip() == label:
            return el
    return None


def _output_text(d) -> str:
    return d.execute_script("return document.querySelector('.jp-OutputArea')?.innerText || ''")


def test_explorer_runs_in_jupyterlab(lab, driver, workdir):
    d = driver
    d.get(f"{lab}/lab/tree/explore.ipynb?reset")
    _wait(lambda: d.execute_script("return !!(window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell'))"),
          120, "the notebook")
    _wait(lambda: d.execute_script("""const w = window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return k && k.status === 'idle'"""), 120, "an idle kernel")
    chart = lambda: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .point")
    for attempt in range(3):  # on a loaded machine the first run request can reach the kernel before it is ready
        d.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            _wait(chart, 120, "the explorer's chart")
            break
        except AssertionError:
            d.save_screenshot(str(workdir / f"explorer_run{attempt}.png"))
            if attempt == 2 or "[*]" in d.execute_script("return document.querySelector('.jp-InputPrompt').innerText"):
                _wait(chart, 120, "the explorer's chart")  # still running: give it more time
                break
    # every control is visible; in the runs view only the sweeps list is hidden
    hidden = [c for c in CONTROLS if not (_control(d, c) is not None and _control(d, c).is_displayed())]
    assert not hidden, f"controls not visible: {hidden}"
    greyed = [c for c in CONTROLS if _control(d, c).find_elements(By.CSS_SELECTOR, "[disabled], .mod-disabled")]
    assert not greyed, f"controls that look disabled: {greyed}"     # a one-option filter is still a live control
    assert _control(d, "sweeps") is None or not _control(d, "sweeps").is_displayed()
    assert "gl" in _control(d, "runs").text and {"pca", "pq", "sq"} <= set(_control(d, "mode").text.split())
    assert "teacher top-10" not in _output_text(d)          # nothing selected yet: no per-query table
    d.save_screenshot(str(workdir / "explorer.png"))
    # a click on a point of the chart selects its row and updates the per-query view
    point = d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace .point")[0]
    ActionChains(d).move_to_element(point).click().perform()
    _wait(lambda: "teacher top-10" in _output_text(d), 120, "the per-query view after a click")
    text = _output_text(d)
    assert "kept" in text and "of the 30 test queries the row was evaluated on" in text, text[-2000:]
    first = text[text.index("teacher top-10"):]
    # another query number: the table changes
    box = _control(d, "query").find_element(By.CSS_SELECTOR, "input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("5\n")
    _wait(lambda: _output_text(d)[_output_text(d).index("teacher top-10"):] != first, 60, "the view of query 5")
    assert "query 5 of the 30" in _output_text(d)   # the number typed is the number shown
    d.save_screenshot(str(workdir / "explorer_clicked.png"))


def test_notebook_opens_unmodified(lab, driver, workdir):
    "The explorer notebook as committed: opening it (its kernel started, nothing run) leaves it unmodified."
    shutil.copy(Path(__file__).resolve().parents[1] / "nbs" / "13_explore.ipynb", workdir / "13_explore.ipynb")
    d = driver
    d.get(f"{lab}/lab/tree/13_explore.ipynb?reset")
    _wait(lambda: d.execute_script("""const w = window.jupyterapp.shell.currentWidget;
        return w && w.context && w.context.path.endsWith('13_explore.ipynb') && document.querySelector('.jp-Notebook .jp-Cell')"""),
          120, "the notebook")
    _wait(lambda: d.execute_script("""const w = window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return k && k.status === 'idle'"""), 120, "an idle kernel")
    time.sleep(3)   # the kernel info reply (language_info) arrives after the kernel is idle
    state = d.execute_script("""const m = window.jupyterapp.shell.currentWidget.context.model;
        return [m.dirty, JSON.stringify(m.metadata)]""")
    assert state[0] is False, f"JupyterLab marked the notebook modified on open; its metadata now: {state[1]} " \
                              "(run `.venv/bin/python tools/nbclean.py` and commit)"
