"""Browser-test fixtures: a real JupyterLab (and Voila) on 127.0.0.1, driven by Playwright.

Chromium is Debian's (/usr/bin/chromium, installed by scripts/setup.sh); Playwright never downloads
a browser. The servers run in a temporary folder holding a copy of the demo notebook, so runs/ and
exports land there, on a free port, with a random token. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "widget_review_demo.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
START_TIMEOUT = 120  # seconds for a server to answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT, *,
              any_answer: bool = False) -> None:
    """Poll until `url` answers 200 (or any HTTP status, with `any_answer`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError:
            if any_answer:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server at {url} did not answer in {timeout}s; log:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, d / NOTEBOOK.name)
    shutil.copy(NOTEBOOK, d / ("nb7_" + NOTEBOOK.name))  # its own kernel session for the Notebook 7 test
    return d


def _server_env(workdir: Path) -> dict:
    env = dict(os.environ)
    home = workdir / "_home"
    home.mkdir(exist_ok=True)
    # own config/runtime/data-less dirs so a developer's settings do not leak into the test
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"), IPYTHONDIR=str(home / "ipython"), PYTHONUNBUFFERED="1")
    env.pop("JUPYTER_PATH", None)
    return env


@pytest.fixture(scope="session")
def lab(workdir, artifacts):
    """A JupyterLab server: yields (base_url, token). The app is exposed as window.jupyterapp."""
    port, token = free_port(), secrets.token_hex(16)
    settings = workdir / "_home" / "lab-settings"
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = artifacts / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port_retries=0", "--ServerApp.allow_root=True", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
           "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={workdir / '_home' / 'workspaces'}",
           "--ServerApp.disable_check_xsrf=False", "--MappingKernelManager.cull_idle_timeout=0"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=_server_env(workdir), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/status?token={token}", proc, log)
        yield base, token
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def voila(workdir, artifacts):
    """Voila serving the demo notebook: yields the URL (with its token)."""
    port, token = free_port(), secrets.token_hex(16)
    log = artifacts / "voila.log"
    cmd = [sys.executable, "-m", "voila", str(workdir / NOTEBOOK.name), "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", f"--token={token}", "--show_tracebacks=True"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=_server_env(workdir), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/voila/static/does-not-exist?token={token}", proc, log, any_answer=True)
        yield f"{base}/?token={token}"
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh installs Debian's chromium)")
    from playwright.sync_api import sync_playwright
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    messages: list[str] = []
    pg.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    pg.console_messages = messages
    yield pg
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
            (ARTIFACTS / f"failed-{request.node.name}.console.txt").write_text("\n".join(messages))
        except Exception:
            pass
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
