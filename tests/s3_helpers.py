"""Start and stop moto's standalone S3 server for tests (integration and e2e).

    with moto_server() as server:          # or: server = start_moto_server(); ...; server.stop()
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        server.create_bucket("boneflow")

The server is a real HTTP process on 127.0.0.1 and a free port; boto3 talks to it exactly as to
AWS. `freeze()` / `thaw()` SIGSTOP / SIGCONT it (connections hang, state is kept), `stop()`
ends it (state is lost: moto keeps everything in memory).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Dummy credentials and region for every client the tests create; moto accepts any values.
TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_SESSION_TOKEN": "testing-session-token",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def set_test_aws_env(environ=os.environ) -> None:
    """Dummy credentials, no shared config files: tests can never reach a real account."""
    environ.update(TEST_AWS_ENV)
    environ["AWS_CONFIG_FILE"] = os.devnull
    environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    environ.pop("AWS_PROFILE", None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MotoServer:
    process: subprocess.Popen
    port: int
    log_path: Path | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def as_dict(self) -> dict:
        return {"endpoint_url": self.endpoint_url, "port": self.port, "pid": self.process.pid, "server": self}

    def client(self, **kwargs):
        """A separate boto3 session/client (a "second client" for read-back checks)."""
        import boto3

        return boto3.session.Session(
            **{k.lower(): v for k, v in TEST_AWS_ENV.items() if k != "AWS_DEFAULT_REGION"},
            region_name=TEST_AWS_ENV["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.endpoint_url, **kwargs)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def reset(self) -> None:
        """Drop all state (moto's reset API)."""
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def alive(self) -> bool:
        return self.process.poll() is None

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _moto_command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def start_moto_server(*, log_dir: Path | None = None, timeout: float = 30.0) -> MotoServer:
    """Start moto's standalone server on a free port and wait until it answers HTTP."""
    env = dict(os.environ)
    set_test_aws_env(env)
    last_error: Exception | None = None
    for _ in range(3):  # a free port can be taken between probing and binding: retry
        port = free_port()
        log_path = Path(log_dir) / f"moto-{port}.log" if log_dir else None
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 closed once the child has it
        proc = subprocess.Popen(_moto_command(port), stdout=out, stderr=subprocess.STDOUT, env=env)
        if log_path:
            out.close()
        server = MotoServer(process=proc, port=port, log_path=log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = RuntimeError(f"moto server exited with {proc.returncode}")
                break
            try:
                urllib.request.urlopen(server.endpoint_url + "/moto-api/", timeout=1).read()
                atexit.register(server.stop)  # never leave an orphan if the caller crashes
                return server
            except OSError as err:
                last_error = err
                time.sleep(0.1)
        server.stop()
    log_hint = f" (log: {log_path})" if log_dir else ""
    raise RuntimeError(f"moto server did not start: {last_error}{log_hint}")


@contextlib.contextmanager
def moto_server(*, log_dir: Path | None = None):
    server = start_moto_server(log_dir=log_dir)
    try:
        yield server
    finally:
        server.stop()
