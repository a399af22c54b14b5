"""Bring up a complete local boneflow stack: Prefect server (SQLite), the `cpu` and `gpu`
process pools, `prefect --no-prompt deploy --all`, one worker per pool and, when asked, a local
S3 server (moto) to stand in for MinIO/AWS.

    .venv/bin/python deployments/local_stack.py --home .boneflow/prefect --port 4200 [--s3]

What then: README, "A full local stack"; the e2e tests drive `LocalStack` via tests/prefect_stack.py.

Every process is started with `subprocess.Popen` and stopped by its PID: `prefect server start
--background` loses its child here, and workers started with a shell `&` ignore SIGINT.
Only the standard library is used so the script runs before anything else is set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


class StackError(RuntimeError):
    pass


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(pid, sig)


def _descendants(pid: int) -> list[int]:
    """All processes below `pid` (from /proc). Flow runs are started in their own session by
    the worker, so killing the worker's process group would leave them running."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):  # one folder per process, named by its pid
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found = list(children.get(pid, []))
    for child in found:  # the list grows while it is walked: every generation in turn
        found.extend(children.get(child, []))
    return found


class LocalStack:
    """A Prefect server + pools + deployments + workers (+ S3) owned by this object; `home` is a
    private PREFECT_HOME (SQLite database, local results, logs of every process)."""

    def __init__(
        self,
        home: Path,
        *,
        port: int = 4200,
        project_dir: Path = PROJECT_DIR,
        s3_port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.home = Path(home).resolve()
        self.port = port
        self.project_dir = Path(project_dir).resolve()
        self.s3_port = s3_port
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.s3_endpoint = f"http://127.0.0.1:{s3_port}" if s3_port else None
        self.extra_env = dict(extra_env or {})
        self.logs = self.home / "logs"
        self.procs: dict[str, subprocess.Popen] = {}

    # --- environment -------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",  # pick up new runs within a second
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "BONEFLOW_PROJECT_DIR": str(self.project_dir),
            "PYTHONUNBUFFERED": "1",
        }
        if self.s3_port:
            env["AWS_ENDPOINT_URL"] = self.s3_endpoint
            env.setdefault("AWS_ACCESS_KEY_ID", "testing")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        env.update(self.extra_env)
        return env

    def prefect(self, *args: str, timeout: float = 120) -> str:
        """Run one `prefect` CLI command against this stack; raise with its output on failure."""
        cmd = [sys.executable, "-m", "prefect", *args]
        done = subprocess.run(
            cmd, cwd=self.project_dir, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise StackError(
                f"`prefect {' '.join(args)}` failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                cmd,
                cwd=self.project_dir,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    # --- REST --------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        # SQLite allows one writer: while the scheduler inserts a new deployment's runs the
        # server answers 503 for a moment. Retry those; anything else is an answer.
        for attempt in range(20):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")[:2000]
                if err.code != 503 or attempt == 19:
                    raise StackError(f"{method} {path} -> HTTP {err.code}: {detail}") from None
                time.sleep(0.5 + 0.25 * attempt)

    # --- parts -------------------------------------------------------------------------
    def start_server(self, timeout: float = 90) -> None:
        self._spawn(
            "server",
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs["server"].poll() is not None:
                raise StackError(f"prefect server exited; see {self.logs / 'server.log'}")
            with contextlib.suppress(StackError, urllib.error.URLError, OSError, ValueError):
                if self.api("GET", "/health", timeout=2) is True:
                    return
            time.sleep(0.5)
        raise StackError(f"prefect server did not answer /api/health in {timeout:.0f}s; see {self.logs / 'server.log'}")

    def start_s3(self, timeout: float = 30) -> None:
        """moto's standalone server: a real HTTP S3 endpoint; `AWS_ENDPOINT_URL` points at it."""
        self._spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.s3_endpoint, timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # it answers: good enough
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise StackError(f"moto S3 server did not start; see {self.logs / 's3.log'}")

    def create_bucket(self, bucket: str) -> None:
        req = urllib.request.Request(f"{self.s3_endpoint}/{bucket}", method="PUT")
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except urllib.error.HTTPError as err:
            if err.code != 409:  # already exists
                raise

    def create_pools(self) -> None:
        base = str(Path(__file__).parent / "pools" / "process.json")  # the base job template of both
        for pool in ("cpu", "gpu"):
            self.prefect("work-pool", "create", pool, "--type", "process", "--overwrite", "--base-job-template", base)

    def deploy(self) -> dict[str, str]:
        """`prefect --no-prompt deploy --all`; returns {"flow/deployment": id}."""
        self.prefect("--no-prompt", "deploy", "--all", timeout=180)
        found = self.api("POST", "/deployments/filter", {})
        flows = {d["flow_id"]: self.api("GET", f"/flows/{d['flow_id']}")["name"] for d in found}
        return {f"{flows[d['flow_id']]}/{d['name']}": d["id"] for d in found}

    def start_worker(self, pool: str) -> subprocess.Popen:
        return self._spawn(
            f"worker-{pool}",
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--name", f"local-{pool}"],
        )

    def kill_worker(self, pool: str) -> None:
        """Simulate the machine dying: SIGKILL the worker and every flow run it started."""
        proc = self.procs.pop(f"worker-{pool}")
        _signal_all([proc.pid, *_descendants(proc.pid)], signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM everything this stack started at once, SIGKILL what lingers after 8 s."""
        # One grace period for all: waiting out each process in turn made every test stack's
        # teardown take 16 s (workers, then the server).
        pids = {name: [proc.pid, *_descendants(proc.pid)] for name, proc in self.procs.items()}
        for group in pids.values():
            _signal_all(group, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_all(pids[name], signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    def up(self, *, s3_bucket: str | None = None) -> dict[str, str]:
        """Everything, in order; returns the deployment ids."""
        self.start_server()
        if self.s3_port:
            self.start_s3()
            if s3_bucket:
                self.create_bucket(s3_bucket)
        self.create_pools()
        deployments = self.deploy()
        self.start_worker("cpu")
        self.start_worker("gpu")
        return deployments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=PROJECT_DIR / ".boneflow" / "prefect",
        help="private PREFECT_HOME (SQLite DB, results, logs)",
    )
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--s3", action="store_true", help="also start a local S3 server (moto)")
    parser.add_argument("--s3-port", type=int, default=9000)
    parser.add_argument("--s3-bucket", default="boneflow")
    args = parser.parse_args(argv)

    stack = LocalStack(args.home, port=args.port, s3_port=args.s3_port if args.s3 else None)
    # SIGTERM stops the stack as Ctrl-C does (the children live in their own sessions)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        deployments = stack.up(s3_bucket=args.s3_bucket if args.s3 else None)
        print(f"Prefect UI:  http://127.0.0.1:{args.port}")
        print(f"PREFECT_API_URL={stack.api_url}")
        for name, dep_id in deployments.items():
            print(f"deployment {name}: {dep_id}")
        if args.s3:
            print(f"S3: AWS_ENDPOINT_URL={stack.s3_endpoint}  store_url=s3://{args.s3_bucket}/boneflow")
        print(f"logs: {stack.logs}   (Ctrl-C stops everything)")
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(1)
        dead = [n for n, p in stack.procs.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited; see {stack.logs}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
