"""In a real browser: JupyterLab opens the Week 2 lecture in headless Chromium, runs the cells up
to the mask explorer, a slider moves by keyboard, and the rendered mask changes with no widget
error. A screenshot is left in .screenshots/ (git-ignored) whether the test passes or fails.

The browser is Debian's chromium (`apt-get install chromium`; .ci/run installs it), driven by
the Python playwright package of the dev extra: no browser is downloaded. JupyterLab runs as
`make lab` runs it (this repository on PYTHONPATH, autograder/ on JUPYTER_CONFIG_PATH), but on
127.0.0.1 with a token, on a temporary copy of the week's folder, with its own empty settings,
workspaces and user folders, so that neither the user's Jupyter state nor autosave can change
the outcome or the repository. The kernel is the python3 kernelspec of the venv.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # the browser fixture fails with how to install it
    sync_playwright = None
    PlaywrightTimeout = TimeoutError

REPO = Path(__file__).resolve().parents[2]
LECTURE = REPO / "course" / "week2_sparse" / "01_sparse_patterns.ipynb"
EXPLORER_SOURCE = "mask_explorer("  # the lecture's code cell whose source starts with this shows the explorer
SLIDER = "n"  # the explorer's slider that the test moves: every pattern reads it
PRESSES = 2  # key presses on it, one redraw each; n moves 2 steps of 16, so block sizes 16 and 32 still divide it
SCREENSHOT = REPO / ".screenshots" / "week2_mask_explorer.png"
EXPLORER = '[data-lcteach="explorer"]'  # the explorer's cell, marked by RUN_EXPLORER
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]

# Every wait is bounded. The machine runs other tests beside this one (make test: 2 workers on
# 2 cores), so the bounds are several times what an idle machine needs; the whole test takes
# well under a minute there.
SERVER_TIMEOUT = 90  # JupyterLab answers /api/status
PAGE_TIMEOUT = 90  # the notebook is open in the page
RUN_TIMEOUT = 180  # kernel start, the cells above the explorer and the explorer cell itself
IMAGE_TIMEOUT = 60  # the explorer shows its first picture
REDRAW_TIMEOUT = 60  # the picture changes after the slider moved
SETTLE = 1.0  # seconds the picture and an idle kernel must hold before the new picture counts as final
ACTION_TIMEOUT = 30_000  # ms, any single Playwright action

# JupyterLab user settings of the clean profile: no news or update checks (no network; no
# notification over the page), every cell rendered (no windowing), no autosave.
SETTINGS = {
    "apputils-extension/notification": '{"fetchNews": "false", "checkForUpdates": false}',
    "notebook-extension/tracker": '{"windowingMode": "none"}',
    "docmanager-extension/plugin": '{"autosave": false}',
}

# Marks the explorer's cell (found by its source in the notebook model, not by index) and runs
# the cells above it, then it: the commands of Run > Run All Above Selected Cell and Run >
# Run Selected Cell. The promise is not returned: Python polls window.__lcteach with a timeout.
RUN_EXPLORER = """(source) => {
  const run = async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    window.__lcteachPanel = panel;
    await panel.context.ready;
    await panel.sessionContext.ready;
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) throw new Error('the notebook has no kernel: ' + panel.sessionContext.kernelDisplayName);
    const cells = panel.content.widgets;
    const index = cells.findIndex(
      c => c.model.type === 'code' && c.model.sharedModel.getSource().trimStart().startsWith(source));
    if (index < 0) throw new Error('no code cell whose source starts with ' + source);
    cells[index].node.dataset.lcteach = 'explorer';
    panel.content.activeCellIndex = index;
    panel.content.deselectAll();
    const above = index > 0 ? await app.commands.execute('notebook:run-all-above') : true;
    panel.content.activeCellIndex = index;
    const cell = await app.commands.execute('notebook:run-cell');
    return {index, above, cell, kernel: kernel.name};
  };
  window.__lcteach = null;
  run().then(r => { window.__lcteach = {done: true, ...r}; },
             e => { window.__lcteach = {done: true, error: String(e && e.stack || e)}; });
}"""

# The explorer's picture and whether the kernel is idle (its status arrives on the same channel
# as the outputs, after them).
PICTURE_STATE = """() => {
  const img = document.querySelector('[data-lcteach="explorer"] .widget-output img');
  const kernel = window.__lcteachPanel?.sessionContext.session?.kernel;
  return {src: img ? img.src : null, idle: kernel ? kernel.status === 'idle' : false};
}"""

# Traces of a broken widget: ipywidgets' own error texts and error view, the Explorer's
# message for impossible values, and error or stderr outputs of the cell.
WIDGET_ERRORS = """(selector) => {
  const cell = document.querySelector(selector);
  if (!cell) return ['nothing matches ' + selector];
  const found = [];
  const text = cell.innerText;
  for (const needle of ['Error displaying widget', 'model not found', 'Cannot draw this', 'Loading widget...'])
    if (text.includes(needle)) found.push(needle);
  if (cell.querySelector('.jupyter-widgets-error-widget')) found.push('an ipywidgets error view');
  for (const out of cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    found.push('stderr/error output: ' + out.innerText.slice(0, 1500));
  return found;
}"""


@dataclass
class Browser:
    page: object  # playwright.sync_api.Page
    console: list[str]  # the page's console errors and uncaught exceptions


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def api(lab: Lab, path: str, method: str = "GET", timeout: float = 5):
    headers = {"Authorization": f"token {lab.token}"}
    request = urllib.request.Request(f"{lab.url}{path}", method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def lab_environment(profile: Path) -> dict[str, str]:
    """The environment of `make lab`, with every per-user Jupyter folder in ``profile``."""
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH")}
    folders = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    for name, folder in folders.items():
        (profile / folder).mkdir(parents=True)
        env[name] = str(profile / folder)
    for plugin, text in SETTINGS.items():
        settings = profile / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(text)
    for name, first in (("PYTHONPATH", REPO), ("JUPYTER_CONFIG_PATH", REPO / "autograder")):
        env[name] = os.pathsep.join([str(first)] + ([os.environ[name]] if os.environ.get(name) else []))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut JupyterLab down with its kernels: politely through the API, else by process id."""
    if process.poll() is None:
        try:
            api(lab, "/api/shutdown", method="POST")
            process.wait(timeout=20)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            pass
    if process.poll() is None:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:  # the kernels this server started
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        process.kill()
        process.wait(timeout=20)


@pytest.fixture
def jupyter_lab(tmp_path):
    """JupyterLab on a free 127.0.0.1 port with a token, rooted at an empty tmp folder, clean profile."""
    root, profile = tmp_path / "root", tmp_path / "profile"
    root.mkdir()
    env = lab_environment(profile)
    # The venv's python3 kernelspec (its "python" is replaced by this interpreter), not a user's or the system's.
    specs = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    spec = json.loads(specs.stdout or "{}").get("kernelspecs", {}).get("python3", {})
    assert str(spec.get("resource_dir", "")).startswith(sys.prefix), (
        f"JupyterLab would run the python3 kernel of {spec.get('resource_dir')!r}, not this venv's ({sys.prefix}):\n"
        f"{specs.stdout}{specs.stderr}"
    )
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, tmp_path / "jupyterlab.log")
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # No build check: its "Build recommended" dialog would cover the page, and it costs seconds of CPU.
        "--ServerApp.tornado_settings={'page_config_data': {'buildCheck': False, 'buildAvailable': False}}",
        # Safety nets should this process die without its teardown: idle kernels and the server end themselves.
        "--MappingKernelManager.cull_idle_timeout=600",
        "--MappingKernelManager.cull_interval=60",
        "--ServerApp.shutdown_no_activity_timeout=900",
    ]
    with lab.log.open("w") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited with code {process.returncode} before it answered; its log:\n{tail(lab.log)}"
                )
            try:
                api(lab, "/api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer {lab.url}/api/status within {SERVER_TIMEOUT} s; "
                        f"its log:\n{tail(lab.log)}"
                    )
                time.sleep(0.25)
        yield lab
    finally:
        stop(process, lab)


def require_browser() -> None:
    """Fail, saying how to install it, unless Debian's chromium and the playwright package are here."""
    if CHROMIUM is None:
        pytest.fail(
            "chromium is not installed: run `bash .ci/run`, which installs it, or "
            "`sudo apt-get install chromium` (this test uses Debian's chromium and never downloads one)"
        )
    if sync_playwright is None:
        pytest.fail("the playwright package is missing: `make test` installs the dev extra (pip install -e '.[dev]')")


@pytest.fixture
def browser():
    """A page of headless Debian Chromium, driven by Playwright; the browser closes at teardown."""
    require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(ACTION_TIMEOUT)
            console: list[str] = []
            page.on("console", lambda message: message.type == "error" and console.append(message.text))
            page.on("pageerror", lambda error: console.append(str(error)))
            yield Browser(page, console)
        finally:
            browser.close()


def explorer_cell_index(notebook: Path) -> int:
    """Index of the first code cell whose source starts with EXPLORER_SOURCE; fails if there is none."""
    if not notebook.exists():
        pytest.fail(
            f"{notebook} does not exist: the Week 2 lecture (solutions/week2_sparse/01_sparse_patterns.py, "
            "released by `make release`) must be in course/ for this test"
        )
    cells = nbformat.read(notebook, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and cell.source.lstrip().startswith(EXPLORER_SOURCE):
            return index
    pytest.fail(f"{notebook} has no code cell whose source starts with {EXPLORER_SOURCE!r}")


@pytest.fixture
def lecture() -> Path:
    """The lecture notebook to open."""
    return LECTURE


@pytest.mark.slow
@pytest.mark.browser
def test_mask_explorer_slider_redraws_in_jupyterlab(lecture, request, record_property):
    start = time.monotonic()
    explorer_cell_index(lecture)  # a missing lecture or browser fails here, before JupyterLab starts
    require_browser()
    jupyter_lab, browser = request.getfixturevalue("jupyter_lab"), request.getfixturevalue("browser")
    page = browser.page
    week = jupyter_lab.root / lecture.parent.name
    shutil.copytree(lecture.parent, week, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    path = f"{lecture.parent.name}/{lecture.name}"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)

    def context() -> str:
        """What a failure message adds: the screenshot, the page's errors, the server's log."""
        errors = "\n".join(browser.console[-10:]) or "(none)"
        log = tail(jupyter_lab.log, 2000)
        return f"\nscreenshot: {SCREENSHOT}\nbrowser console errors:\n{errors}\nJupyterLab log:\n{log}"

    try:
        try:
            page.goto(f"{jupyter_lab.url}/lab/tree/{path}?token={jupyter_lab.token}", timeout=PAGE_TIMEOUT * 1000)
            page.wait_for_function(
                "(path) => window.jupyterapp?.shell.currentWidget?.context?.path === path"
                " && window.jupyterapp.shell.currentWidget.content.widgets.length > 0",
                arg=path,
                timeout=PAGE_TIMEOUT * 1000,
                polling=250,
            )
        except PlaywrightTimeout:
            pytest.fail(f"JupyterLab did not show {path} as an open notebook within {PAGE_TIMEOUT} s{context()}")
        opened = time.monotonic()

        page.evaluate(RUN_EXPLORER, EXPLORER_SOURCE)
        try:
            page.wait_for_function("() => window.__lcteach?.done", timeout=RUN_TIMEOUT * 1000, polling=250)
        except PlaywrightTimeout:
            pytest.fail(f"the cells up to the mask explorer did not finish within {RUN_TIMEOUT} s{context()}")
        result = page.evaluate("() => window.__lcteach")
        assert "error" not in result, f"could not run the mask explorer cell: {result.get('error')}{context()}"
        failed = "the mask explorer cell" if result["above"] else "a cell above the mask explorer"
        assert result["above"] and result["cell"], (
            f"{failed} failed (the explorer is cell {result['index']}): "
            f"{page.evaluate(WIDGET_ERRORS, '.jp-Notebook')}{context()}"
        )
        explorer = page.locator(EXPLORER)
        ran = time.monotonic()

        image = explorer.locator(".widget-output img").first
        try:
            image.wait_for(state="attached", timeout=IMAGE_TIMEOUT * 1000)
            explorer.scroll_into_view_if_needed()
            image.wait_for(state="visible", timeout=IMAGE_TIMEOUT * 1000)
        except PlaywrightTimeout:
            shown = explorer.locator(".jp-Cell-outputWrapper").inner_text(timeout=5000)[:1500]
            pytest.fail(
                f"no rendered mask (<img> in the explorer's output widget) within {IMAGE_TIMEOUT} s; "
                f"the cell's output shows:\n{shown or '(nothing)'}{context()}"
            )
        errors = page.evaluate(WIDGET_ERRORS, EXPLORER)
        assert not errors, f"the mask explorer shows an error before the slider moved: {errors}{context()}"
        before = page.evaluate(PICTURE_STATE)["src"]
        assert before.startswith("data:image/png"), f"the explorer's picture is not a PNG: {before[:80]}{context()}"

        label = page.locator(".widget-label", has_text=re.compile(f"^{SLIDER}$"))
        slider = explorer.locator(".widget-hslider").filter(has=label)
        count = slider.count()
        assert count == 1, f"the explorer has {count} sliders labelled {SLIDER!r}, expected 1{context()}"
        handle = slider.locator(".noUi-handle")
        value, high = (int(float(handle.get_attribute(a))) for a in ("aria-valuenow", "aria-valuemax"))
        key = "ArrowRight" if value < high else "ArrowLeft"
        handle.focus()
        for _ in range(PRESSES):
            handle.press(key)
        readout = slider.locator(".widget-readout")
        try:
            page.wait_for_function(
                "([el, old]) => el.textContent.trim() !== old",
                arg=[readout.element_handle(), str(value)],
                timeout=10_000,
                polling=100,
            )
        except PlaywrightTimeout:
            pytest.fail(f"the {SLIDER!r} slider still reads {value} after {PRESSES} presses of {key}{context()}")

        def moved() -> str:
            return f"{SLIDER} moved from {value} to {readout.inner_text().strip()}"

        # The new picture is final once it and an idle kernel have held for SETTLE seconds
        # (each press sends one change, and each change redraws once). An error fails at once.
        deadline, last, since = time.monotonic() + REDRAW_TIMEOUT, before, time.monotonic()
        while True:
            state, now = page.evaluate(PICTURE_STATE), time.monotonic()
            errors = page.evaluate(WIDGET_ERRORS, EXPLORER)
            assert not errors, f"the mask explorer shows an error after {moved()}: {errors}{context()}"
            if state["src"] != last:
                last, since = state["src"], now
            if last not in (None, before) and state["idle"] and now - since >= SETTLE:
                break
            if now > deadline:
                picture = "missing" if last is None else "unchanged" if last == before else "still changing"
                pytest.fail(
                    f"the mask picture did not change and settle within {REDRAW_TIMEOUT} s after {moved()} "
                    f"(picture {picture}, kernel {'idle' if state['idle'] else 'busy'}){context()}"
                )
            page.wait_for_timeout(200)
        errors = page.evaluate(WIDGET_ERRORS, EXPLORER)
        assert not errors, f"the mask explorer shows an error after {moved()}: {errors}{context()}"
        assert last.startswith("data:image/png"), f"the new picture is not a PNG: {last[:80]}{context()}"
        assert last != before
        record_property("open_seconds", opened - start)
        record_property("run_seconds", ran - opened)
        record_property("redraw_seconds", time.monotonic() - ran)
    finally:
        try:
            if page.locator(EXPLORER).count():
                page.locator(EXPLORER).scroll_into_view_if_needed(timeout=2000)
            page.screenshot(path=str(SCREENSHOT), timeout=15_000)
        except Exception as error:  # noqa: BLE001 - a failure above says more than a missing screenshot
            print(f"no screenshot: {error}")
