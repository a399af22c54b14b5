"""The gpu pool on real Prefect parts: `prefect server`, the pools created from
deployments/pools/*.json with their real types (kubernetes, docker), `prefect deploy --all`.

- The real `prefect worker start --type kubernetes --run-once` submits a train-gpu flow run to
  a recording stand-in for the Kubernetes API: the Job it POSTs is asserted (GPU request,
  toleration, env, /dev/shm) and schema-checked. The same for `--type docker` against a
  stand-in for the Docker Engine API.
- A submitted Job whose pod does not start in time (no GPU node, no image): the dispatch wait
  cancels the run; when the pod starts later it exits without training.
- No worker on the gpu pool: `boneflow run --dispatch deployment --dispatch-start-timeout 40`
  exits 1 naming the pool, and the training flow run is Cancelled, not left waiting.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import prefect_stack as ps
from recording_apis import RecordingDockerAPI, RecordingKubernetesAPI

pytest.importorskip("prefect_kubernetes", reason="pip install -e '.[kubernetes]' (scripts/setup.sh does)")
pytest.importorskip("prefect_docker", reason="pip install -e '.[docker]' (scripts/setup.sh does)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

POOLS = ps.REPO / "deployments" / "pools"
IMAGE = "registry.example.org/boneflow-gpu:1.0"
TRAIN_PARAMS = {"run_id": "20260101T000000Z-abcdef", "config": {}, "dataset_fingerprint": "ab" * 8}
# In a pod, in-cluster config wins over KUBECONFIG: never let a CI runner's cluster answer.
IN_CLUSTER_ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
BONEFLOW_CLI = "import sys; from flows.cli import main; sys.argv[0] = 'boneflow'; main()"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Server, pools of the real types, `prefect deploy --all`, and a train deployment on the
    docker pool; no workers."""
    stack = ps.LocalStack(tmp_path_factory.mktemp("gpu-pools") / "prefect", port=ps.free_port())
    try:
        stack.start_server()
        stack.prefect(
            "work-pool",
            "create",
            "cpu",
            "--type",
            "process",
            "--overwrite",
            "--base-job-template",
            str(POOLS / "process.json"),
        )
        for pool, kind in (("gpu", "kubernetes"), ("gpu-docker", "docker")):
            stack.prefect(
                "work-pool",
                "create",
                pool,
                "--type",
                kind,
                "--overwrite",
                "--base-job-template",
                str(POOLS / f"gpu-{kind}.json"),
            )
        stack.deployments = stack.deploy()
        train_gpu = stack.api("GET", f"/deployments/{stack.deployments['train/train-gpu']}")
        docker_dep = stack.api(
            "POST",
            "/deployments/",
            {
                "name": "train-docker",
                "flow_id": train_gpu["flow_id"],
                "work_pool_name": "gpu-docker",
                "entrypoint": train_gpu["entrypoint"],
                "pull_steps": train_gpu["pull_steps"],
            },
        )
        stack.deployments["train/train-docker"] = docker_dep["id"]
        yield stack
    finally:
        stack.stop()


def _k8s_worker_env(k8s: RecordingKubernetesAPI, folder: Path) -> dict:
    return {
        "KUBECONFIG": str(k8s.write_kubeconfig(folder)),
        # the observer watches pods cluster-wide (kopf); the stand-in serves only Jobs
        "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED": "false",
    }


def _run_worker_once(stack, pool: str, kind: str, extra_env: dict, timeout: float = 180) -> str:
    """The real worker CLI, one poll: submits the pool's scheduled runs and exits."""
    env = {**stack.env(), **extra_env}
    for name in IN_CLUSTER_ENV:
        env.pop(name, None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            kind,
            "--run-once",
            "--install-policy",
            "never",
            "--name",
            f"once-{kind}",
        ],
        cwd=stack.project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def _wait_for_infrastructure(stack, flow_run_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = ps.flow_run(stack, flow_run_id)
        if run.get("infrastructure_pid") or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


@dataclass(frozen=True)
class SubmittedJob:
    flow_run_id: str  # the train-gpu flow run the kubernetes worker submitted
    jobs: list[dict]  # the Job bodies the worker POSTed
    calls: list  # every call the stand-in API saw
    output: str  # the worker's output
    run: dict  # the flow run once its infrastructure was recorded (or after 30 s)


@pytest.fixture(scope="module")
def submitted_job(stack, tmp_path_factory) -> SubmittedJob:
    """A train-gpu flow run that the real kubernetes worker (one poll) submitted as a Job to the
    recording stand-in API; no pod ever starts for it."""
    flow_run_id = stack.api(
        "POST",
        f"/deployments/{stack.deployments['train/train-gpu']}/create_flow_run",
        {"parameters": TRAIN_PARAMS, "job_variables": {"image": IMAGE}},
    )["id"]
    with RecordingKubernetesAPI() as k8s:
        env = _k8s_worker_env(k8s, tmp_path_factory.mktemp("kubeconfig"))
        output = _run_worker_once(stack, "gpu", "kubernetes", env)
        jobs = k8s.bodies("POST", "/apis/batch/v1/namespaces/boneflow/jobs")
        calls = k8s.calls()
    run = _wait_for_infrastructure(stack, flow_run_id)
    return SubmittedJob(flow_run_id=flow_run_id, jobs=jobs, calls=calls, output=output, run=run)


def test_kubernetes_worker_posts_a_gpu_job(stack, submitted_job):
    flow_run_id, jobs = submitted_job.flow_run_id, submitted_job.jobs
    assert len(jobs) == 1, (submitted_job.calls, submitted_job.output[-3000:])
    job = jobs[0]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BONEFLOW_PROJECT_DIR"] == "/opt/boneflow"
    assert env["PREFECT__FLOW_RUN_ID"] == flow_run_id
    # the pod reports to the API URL the worker itself uses: it must be reachable from pods
    assert env["PREFECT_API_URL"] == stack.api_url
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert job["metadata"]["namespace"] == "boneflow"
    assert kubernetes_validate.validate(job, "1.37", strict=False)

    run = submitted_job.run
    assert run["infrastructure_pid"].startswith("boneflow:" + job["metadata"]["generateName"])
    assert run["state"]["type"] == "PENDING"  # submitted; a pod that never starts stays here


def test_pod_that_starts_after_the_dispatch_timeout_does_not_train(stack, submitted_job):
    """The Job stays in the cluster after the cancel (prefect-kubernetes 0.8.0 deletes no Job
    once submitted); when its pod finally starts, `prefect flow-run execute` (the pod's
    command) finds the run Cancelled and exits without running the flow."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.training import _wait_until_all_final

    flow_run_id = submitted_job.flow_run_id
    assert submitted_job.run["state"]["type"] == "PENDING", submitted_job.run["state"]
    with (
        temporary_settings({PREFECT_API_URL: stack.api_url}),
        get_client(sync_client=True) as client,
        pytest.raises(
            RuntimeError, match=r"did not start on work pool 'gpu' within 3s \(it was \w+\); it is cancelled"
        ),
    ):
        _wait_until_all_final(client, [client.read_flow_run(flow_run_id)], 3, labels=[""])
    assert ps.flow_run(stack, flow_run_id)["state"]["type"] == "CANCELLED"

    done = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "execute", flow_run_id],
        cwd=stack.project_dir,
        env={**stack.env(), "PREFECT__FLOW_RUN_ID": flow_run_id},
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "already in Cancelled state, skipping" in output, output[-3000:]
    states = stack.api("GET", f"/flow_run_states/?flow_run_id={flow_run_id}")
    assert "RUNNING" not in {s["type"] for s in states}
    assert ps.flow_run(stack, flow_run_id)["state"]["type"] == "CANCELLED"


def test_docker_worker_creates_a_gpu_container(stack):
    flow_run_id = stack.api(
        "POST", f"/deployments/{stack.deployments['train/train-docker']}/create_flow_run", {"parameters": TRAIN_PARAMS}
    )["id"]
    with RecordingDockerAPI() as docker:
        output = _run_worker_once(stack, "gpu-docker", "docker", {"DOCKER_HOST": docker.docker_host})
        created = docker.bodies("POST", r"(/v[\d.]+)?/containers/create")
        assert len(created) == 1, (docker.calls(), output[-3000:])
        assert any(call.endswith("/start") for call in docker.calls())
    body = created[0]
    host = body["HostConfig"]
    assert body["Image"] == "boneflow-gpu:latest"
    assert [{k: r[k] for k in ("Driver", "Count", "Capabilities")} for r in host["DeviceRequests"]] == [
        {"Driver": "nvidia", "Count": 1, "Capabilities": [["gpu"]]}
    ]
    assert host["ShmSize"] == 2 * 1024**3
    assert "IpcMode" not in host or host["IpcMode"] in ("", None)
    env = dict(item.split("=", 1) for item in body["Env"])
    assert env["BONEFLOW_PROJECT_DIR"] == "/opt/boneflow" and env["PREFECT__FLOW_RUN_ID"] == flow_run_id
    assert body["Cmd"] == ["prefect", "flow-run", "execute"]


def test_no_gpu_worker_dispatch_times_out_and_cancels_the_training_run(stack, tmp_path):
    from boneflow.demo.dataset import write_demo_dataset

    data = tmp_path / "demo"
    write_demo_dataset(data, n=120, seed=3)
    before = {r["id"] for r in ps.flow_runs_of(stack, "train/train-gpu")}
    env = {**stack.env(), "BONEFLOW_WORK_DIR": str(tmp_path / "work")}
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BONEFLOW_CLI,
            "run",
            "--data-dir",
            str(data),
            "--store",
            str(tmp_path / "store"),
            "--dispatch",
            "deployment",
            "--dispatch-start-timeout",
            "40",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--no-pretrained",
            "--folds",
            "1",  # one training run to wait for (fanned-out folds: tests/e2e/test_crossfit_on_server.py)
        ],
        cwd=stack.project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - t0
    error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    assert done.returncode == 1, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "work pool 'gpu'" in error and "prefect worker start --pool gpu" in error, done.stderr[-3000:]
    assert "did not start" in error and "40s" in error
    print(f"\nboneflow run with no gpu worker: exit 1 after {seconds:.1f}s; {error}")

    children = [r for r in ps.flow_runs_of(stack, "train/train-gpu") if r["id"] not in before]
    assert len(children) == 1
    assert children[0]["state"]["type"] == "CANCELLED", children[0]["state"]
    assert children[0]["work_pool_name"] == "gpu"
