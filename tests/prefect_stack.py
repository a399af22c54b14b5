"""A real local Prefect stack for the e2e and browser tests, and the REST calls the UI makes.

The stack itself (server, pools, deploy, workers, S3) is deployments/local_stack.py's
`LocalStack`, the same code a user runs; this module adds what tests need around it:
triggering a deployment like the Run button, Retry like the UI, waiting for states, and
reading task runs, artifacts and logs.

    with running_stack(tmp_path, s3=True) as stack:
        run_id = trigger(stack, "retrain/retrain", {"config": {...}})
        run = wait_for_state(stack, run_id)
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _load_local_stack():
    spec = importlib.util.spec_from_file_location("boneflow_local_stack", REPO / "deployments" / "local_stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


local_stack = _load_local_stack()
LocalStack = local_stack.LocalStack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_stack(home: Path, *, s3_bucket: str | None = None, extra_env: dict | None = None):
    """Server + pools + `prefect deploy --all` + a worker per pool (+ moto S3 with a bucket)."""
    stack = LocalStack(home, port=free_port(), s3_port=free_port() if s3_bucket else None, extra_env=extra_env)
    try:
        stack.deployments = stack.up(s3_bucket=s3_bucket)
        yield stack
    finally:
        stack.stop()


# --- what the UI does ---------------------------------------------------------------------
def trigger(stack, deployment: str, parameters: dict) -> str:
    """The Run button: POST /api/deployments/{id}/create_flow_run. Returns the flow run id."""
    dep_id = stack.deployments[deployment]
    return stack.api("POST", f"/deployments/{dep_id}/create_flow_run", {"parameters": parameters})["id"]


def retry(stack, flow_run_id: str) -> None:
    """The Retry button: force the run back to Scheduled/AwaitingRetry; a worker picks it up."""
    stack.api(
        "POST",
        f"/flow_runs/{flow_run_id}/set_state",
        {"state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True},
    )


def kill_flow_run_process(stack, pool: str, flow_run_id: str, timeout: float = 120) -> int:
    """One flow run's process dies (OOM-killed, its machine lost) while the worker of `pool`
    lives on: wait for the process the worker started for `flow_run_id` (a worker gives each
    flow run's process PREFECT__FLOW_RUN_ID) and SIGKILL it and what it started. The worker
    then reports the flow run Crashed. Returns the killed process id."""
    worker = stack.procs[f"worker-{pool}"]
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in local_stack._descendants(worker.pid):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile
                continue
            if marker in environ:
                for victim in [pid, *local_stack._descendants(pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                return pid
        time.sleep(0.05)
    raise TimeoutError(f"no process of flow run {flow_run_id} under the {pool} worker after {timeout:.0f}s")


# --- reading runs -------------------------------------------------------------------------
def flow_run(stack, flow_run_id: str) -> dict:
    return stack.api("GET", f"/flow_runs/{flow_run_id}")


def wait_for_state(stack, flow_run_id: str, *, states=FINAL, timeout: float = 300, after: str | None = None) -> dict:
    """Poll until the run's state type is in `states` (and, with `after`, its state id differs
    from `after`, so a retried run is not mistaken for its previous final state)."""
    deadline = time.monotonic() + timeout
    run = flow_run(stack, flow_run_id)
    while time.monotonic() < deadline:
        run = flow_run(stack, flow_run_id)
        state = run.get("state") or {}
        if state.get("type") in states and state.get("id") != after:
            return run
        time.sleep(0.5)
    raise TimeoutError(
        f"flow run {flow_run_id} still {run.get('state', {}).get('type')} after {timeout:.0f}s; logs under {stack.logs}"
    )


def flow_runs_of(stack, deployment: str) -> list[dict]:
    return stack.api(
        "POST",
        "/flow_runs/filter",
        {"flow_runs": {"deployment_id": {"any_": [stack.deployments[deployment]]}}, "sort": "EXPECTED_START_TIME_ASC"},
    )


def task_runs(stack, flow_run_id: str) -> list[dict]:
    return stack.api("POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})


def task_states(stack, flow_run_id: str) -> dict[str, list[str]]:
    """{task name: [state names of its runs]} (task-run states arrive late: poll this)."""
    out: dict[str, list[str]] = {}
    for run in task_runs(stack, flow_run_id):
        name = run["name"].rsplit("-", 1)[0]
        out.setdefault(name, []).append((run.get("state") or {}).get("name"))
    return out


def artifacts(stack, flow_run_id: str) -> list[dict]:
    return stack.api("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})


def logs(stack, flow_run_id: str) -> list[str]:
    """Every log line of the flow run, oldest first (the API answers at most 200 per call)."""
    lines: list[str] = []
    while True:
        page = stack.api(
            "POST",
            "/logs/filter",
            {
                "logs": {"flow_run_id": {"any_": [flow_run_id]}},
                "sort": "TIMESTAMP_ASC",
                "limit": 200,
                "offset": len(lines),
            },
        )
        lines += [entry["message"] for entry in page]
        if len(page) < 200:
            return lines
