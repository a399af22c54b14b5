"""Browser tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright's Python API.

Never `playwright install`: the system Chromium is used through `executable_path`. Servers
under test are started by the fixtures on free ports and stopped afterwards; screenshots go
to a pytest temp folder and their paths are printed (run with -s to see them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BONEFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "GRADIO_SHARE": "False"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} before answering {url}:\n"
                f"{log.read_text()[-3000:] if log else ''}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s:\n{log.read_text()[-3000:] if log else ''}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# Module scope, not session: sync Playwright keeps an asyncio loop running in this thread while
# it is open, and Prefect then treats later tests' sync calls (State.result()) as async.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh --browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def app_store(tmp_path_factory) -> Path:
    from boneflow.demo.store import write_demo_store

    store = tmp_path_factory.mktemp("app-store") / "store"
    write_demo_store(str(store), image_size=64, seed=0)
    return store


@pytest.fixture(scope="session")
def gradio_app(app_store, tmp_path_factory):
    """`boneflow app` in a subprocess on a free port; yields its URL."""
    work = tmp_path_factory.mktemp("gradio-app")
    port = free_port()
    env = {
        **os.environ,
        **OFFLINE_ENV,
        # serve this checkout's code, not whichever copy of boneflow is installed in the venv
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "BONEFLOW_CACHE": str(work / "cache"),
        "GRADIO_TEMP_DIR": str(work / "gradio-tmp"),
    }
    log = work / "app.log"
    cmd = [
        sys.executable,
        "-c",
        "from boneflow.cli.main import main; main()",
        "app",
        "--store",
        str(app_store),
        "--port",
        str(port),
        "--max-mb",
        "1",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=90, proc=proc, log=log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)
        print(f"\napp log: {log}")
        shutil.rmtree(work / "gradio-tmp", ignore_errors=True)
