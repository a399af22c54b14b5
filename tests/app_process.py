"""`boneflow app` as a real server in a subprocess, for tests that talk to it over HTTP
(httpx, gradio_client)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(store: Path, work: Path, *, env: dict[str, str] | None = None, startup_s: float = 120):
    """Start `boneflow app --store STORE` on a free port; yield its base URL; stop it."""
    import httpx

    port = free_port()
    full_env = {
        **os.environ,
        # serve this checkout's code, not whichever copy of boneflow is installed in the venv
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "BONEFLOW_CACHE": str(work / "cache"),
        "GRADIO_TEMP_DIR": str(work / "tmp"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    log = work / "app.log"
    command = [sys.executable, "-c", "from boneflow.cli.main import main; main()", "app"]
    command += ["--store", str(store), "--port", str(port), "--threads", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"app did not start:\n{log.read_text()[-3000:]}"
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
