"""The normal output of `boneflow run` and `boneflow app` holds boneflow's lines only: no
telemetry notice from Prefect, no share-link hint from Gradio."""

from __future__ import annotations

import os
import pty
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from boneflow.demo.store import write_demo_store

# what prefect_environment() sets; cleared first so monkeypatch restores them afterwards
RUN_ENV = (
    "DO_NOT_TRACK",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
)


def _without_telemetry_opt_outs(monkeypatch) -> None:
    from prefect._internal.analytics.ci_detection import CI_ENV_VARS

    for name in (*RUN_ENV, *CI_ENV_VARS):
        monkeypatch.delenv(name, raising=False)


def test_boneflow_run_turns_prefects_client_telemetry_off(monkeypatch):
    from prefect._internal.analytics.enabled import is_telemetry_enabled

    from flows.cli_run import prefect_environment

    _without_telemetry_opt_outs(monkeypatch)
    assert is_telemetry_enabled()  # what makes `import prefect` print its notice in a terminal
    prefect_environment()
    assert not is_telemetry_enabled()
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # a user's own choice wins
    prefect_environment()
    assert os.environ["DO_NOT_TRACK"] == "0"


def test_no_telemetry_notice_in_a_terminal(tmp_path, monkeypatch):
    """`import prefect` in a terminal with a fresh PREFECT_HOME, after boneflow run's settings."""
    _without_telemetry_opt_outs(monkeypatch)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    primary, secondary = pty.openpty()
    code = "from flows.cli_run import prefect_environment; prefect_environment(); import prefect; print('imported')"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=secondary, stderr=secondary, cwd=Path.cwd())
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 0, output
    text = output.decode(errors="replace")
    assert "imported" in text and "anonymous usage" not in text and "telemetry" not in text, text


def test_app_prints_its_url_and_no_share_link_hint(tmp_path):
    store = tmp_path / "store"
    write_demo_store(str(store), image_size=64, seed=0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "BONEFLOW_CACHE": str(tmp_path / "cache"),
        "GRADIO_TEMP_DIR": str(tmp_path / "tmp"),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "app.log"
    command = [sys.executable, "-c", "from boneflow.cli.main import main; main()", "app", "--store", str(store)]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to ~2 minutes on a busy machine
            assert proc.poll() is None, log.read_text()[-3000:]
            if "serving the champion" in log.read_text():
                httpx.get(url + "/", timeout=5).raise_for_status()
                break
            time.sleep(0.2)
        text = log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert f"serving the champion on {url}/" in text, text
    assert "share=True" not in text and "public link" not in text, text
