"""`prefect --no-prompt deploy --all` as a new user runs it: from the project folder, without
BONEFLOW_PROJECT_DIR. The deployments must run (the process pools find the project), a worker
that cannot find the project must say so in one line, and the Run button must refuse a store
URL carrying credentials before a flow run is stored."""

from __future__ import annotations

import subprocess
import sys

import pytest

import prefect_stack as ps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
REPO = ps.REPO
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY"


class NewUserStack(ps.LocalStack):
    """The local stack without BONEFLOW_PROJECT_DIR anywhere: not for deploy, not for workers."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("BONEFLOW_PROJECT_DIR", None)
        return env


def _deploy(stack, project_dir: str | None) -> dict:
    env = stack.env()
    if project_dir is not None:
        env["BONEFLOW_PROJECT_DIR"] = project_dir
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = stack.api("POST", "/deployments/filter", {})
    return {d["name"]: d for d in found}


def _train_params(tmp_path) -> dict:
    # An invalid fingerprint: the flow loads, then fails at once in its first task (an
    # InvalidKeyError is deterministic, so it is not retried).
    return {
        "run_id": "20261126T000000Z-abcdef",
        "dataset_fingerprint": "not-a-fingerprint",
        "config": {"store_url": str(tmp_path / "store"), "image_size": 32, "pretrained": False},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = NewUserStack(tmp_path_factory.mktemp("prefect"), port=ps.free_port(), project_dir=REPO)
    try:
        stack.start_server()
        stack.create_pools()
        yield stack
    finally:
        stack.stop()


def test_deploy_without_project_dir_runs_from_the_folder_it_ran_in(stack, tmp_path):
    deployments = _deploy(stack, None)
    for dep in deployments.values():
        steps = {next(iter(s)): next(iter(s.values())) for s in dep["pull_steps"]}
        assert steps["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO.resolve())
    stack.start_worker("gpu")
    flow_run_id = stack.api(
        "POST",
        f"/deployments/{deployments['train-gpu']['id']}/create_flow_run",
        {"parameters": _train_params(tmp_path)},
    )["id"]
    run = ps.wait_for_state(stack, flow_run_id, timeout=180)
    assert run["state"]["type"] == "FAILED", run["state"]  # the flow ran: not CRASHED by the pull step
    assert "not-a-fingerprint" in run["state"]["message"]
    fetch = [t for t in ps.task_runs(stack, flow_run_id) if t["name"].startswith("fetch_training_data")]
    assert [t["run_count"] for t in fetch] == [1]  # not retried 3 times over 155 s


def test_a_worker_without_the_project_says_so_in_one_line(stack, tmp_path):
    deployments = _deploy(stack, "/nonexistent/boneflow")
    if "worker-gpu" not in stack.procs:
        stack.start_worker("gpu")
    flow_run_id = stack.api(
        "POST",
        f"/deployments/{deployments['train-gpu']['id']}/create_flow_run",
        {"parameters": _train_params(tmp_path)},
    )["id"]
    run = ps.wait_for_state(stack, flow_run_id, timeout=180)
    assert run["state"]["type"] == "CRASHED"
    # The pull step's output goes to the worker's output, not the API: the worker's log has the
    # line; the run's own logs in the UI end at the failing pull step.
    worker_log = (stack.logs / "worker-gpu.log").read_text()
    line = next(li for li in worker_log.splitlines() if li.startswith("boneflow: no project at"))
    assert "/nonexistent/boneflow" in line and "set BONEFLOW_PROJECT_DIR" in line
    run_logs = ps.logs(stack, flow_run_id)
    assert "Executing deployment step: run_shell_script" in run_logs, run_logs
    assert "Executing deployment step: set_working_directory" not in run_logs


def test_the_run_button_refuses_credentials_in_the_store_url(stack):
    deployments = _deploy(stack, None)
    dep_id = deployments["retrain"]["id"]
    with pytest.raises(ps.local_stack.StackError, match="409"):
        stack.api(
            "POST",
            f"/deployments/{dep_id}/create_flow_run",
            {"parameters": {"config": {"store_url": f"s3://AKIAEXAMPLE:{SECRET}@bucket/p"}}},
        )
    stored = stack.api("POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [dep_id]}}})
    assert not any(SECRET in str(r["parameters"]) for r in stored)
