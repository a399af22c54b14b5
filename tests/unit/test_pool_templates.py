"""The gpu pool templates as the real workers read them: prefect-kubernetes and prefect-docker
build their job configuration with `from_template_and_values` and `prepare_for_flow_run`
(what a worker does for each flow run), the server's own job-variable validation guards the
bounds, and the Job a Kubernetes worker would POST is checked against the Kubernetes schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from uuid import uuid4

import pytest

pytest.importorskip("prefect_kubernetes", reason="pip install -e '.[kubernetes]' (scripts/setup.sh does)")
pytest.importorskip("prefect_docker", reason="pip install -e '.[docker]' (scripts/setup.sh does)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")

from prefect.client.orchestration import PrefectClient  # noqa: E402
from prefect.client.schemas.objects import FlowRun  # noqa: E402
from prefect.utilities.schema_tools.validation import ValidationError  # noqa: E402
from prefect.utilities.schema_tools.validation import validate as validate_job_variables  # noqa: E402
from prefect_docker.worker import DockerWorkerJobConfiguration  # noqa: E402
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration  # noqa: E402

POOLS = Path(__file__).resolve().parents[2] / "deployments" / "pools"
K8S_TEMPLATE = json.loads((POOLS / "gpu-kubernetes.json").read_text())
DOCKER_TEMPLATE = json.loads((POOLS / "gpu-docker.json").read_text())
# Kubernetes releases the managed services (EKS, GKE, AKS) support today, and the newest schema.
K8S_VERSIONS = ["1.30", "1.33", "1.37"]
# prefect-kubernetes 0.8.0 refuses a Job without these two under spec.template.spec (a PodSpec,
# where Kubernetes does not know them; the API server drops them with a warning). They stay in
# the template, and the strict schema check is made without exactly these two.
PREFECT_REQUIRED_POD_FIELDS = ("parallelism", "completions")


def _render(config_class, template: dict, values: dict):
    # The worker passes its own client; these templates hold no block or variable references,
    # so the client is never called (an unreachable URL proves it).
    async def build():
        return await config_class.from_template_and_values(
            template, values, client=PrefectClient("http://127.0.0.1:9/api")
        )

    config = asyncio.run(build())
    flow_run = FlowRun(id=uuid4(), name="brisk-otter", flow_id=uuid4())
    config.prepare_for_flow_run(flow_run)
    return config, flow_run


def _server_check(template: dict, values: dict) -> None:
    """What the Prefect server runs on a deployment's or flow run's job variables."""
    validate_job_variables(
        values,
        template["variables"],
        raise_on_error=True,
        preprocess=True,
        ignore_required=True,
        allow_none_with_default=True,
    )


def _pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def test_kubernetes_job_has_the_gpu_toleration_shm_and_env():
    config, flow_run = _render(KubernetesWorkerJobConfiguration, K8S_TEMPLATE, {})
    job = config.job_manifest
    pod = _pod(job)
    container = pod["containers"][0]
    assert config.namespace == job["metadata"]["namespace"] == "boneflow"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BONEFLOW_PROJECT_DIR"] == "/opt/boneflow"
    assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "true"
    assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    # backoffLimit 0: an evicted pod (a reclaimed spot node) reschedules the flow run
    assert job["spec"]["backoffLimit"] == 0 and env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "reschedule"
    assert container["args"] == ["prefect", "flow-run", "execute"] and "command" not in container
    assert pod["nodeSelector"] == {} and pod["securityContext"] == {"runAsNonRoot": True}
    assert job["metadata"]["labels"]["prefect.io/flow-run-id"] == str(flow_run.id)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_job_validates_against_the_kubernetes_schema(version):
    values = {
        "gpus": 2,
        "node_selector": {"node.kubernetes.io/instance-type": "g5.2xlarge"},
        "service_account_name": "boneflow-train",
        "image": "registry.example.org/boneflow-gpu:1.0",
    }
    _server_check(K8S_TEMPLATE, values)
    job = _render(KubernetesWorkerJobConfiguration, K8S_TEMPLATE, values)[0].job_manifest
    assert kubernetes_validate.validate(job, version, strict=False)
    for field in PREFECT_REQUIRED_POD_FIELDS:
        assert _pod(job).pop(field) == 1
    assert kubernetes_validate.validate(job, version, strict=True)
    assert _pod(job)["serviceAccountName"] == "boneflow-train"
    assert _pod(job)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_strict_schema_rejects_only_what_prefect_kubernetes_requires():
    job = _render(KubernetesWorkerJobConfiguration, K8S_TEMPLATE, {})[0].job_manifest
    with pytest.raises(kubernetes_validate.ValidationError, match="'completions', 'parallelism' were unexpected"):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)


def test_prefect_kubernetes_still_requires_the_pod_level_fields():
    """When a newer prefect-kubernetes drops this requirement, drop the two fields from the template."""
    template = json.loads(json.dumps(K8S_TEMPLATE))
    for field in PREFECT_REQUIRED_POD_FIELDS:
        del template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][field]
    with pytest.raises(Exception, match="missing required attributes.*completions.*parallelism"):
        _render(KubernetesWorkerJobConfiguration, template, {})


@pytest.mark.parametrize(
    "values,field",
    [
        ({"gpus": 0}, "gpus"),
        ({"node_selector": {"nvidia.com/gpu.present": True}}, "node_selector"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
    ],
)
def test_kubernetes_variables_out_of_bounds_are_refused(values, field):
    with pytest.raises(ValidationError, match=field):
        _server_check(K8S_TEMPLATE, values)


def test_docker_container_gets_a_gpu_request_and_shm_without_host_ipc():
    config, flow_run = _render(DockerWorkerJobConfiguration, DOCKER_TEMPLATE, {"gpu_count": 2})
    kwargs = config.container_create_kwargs
    assert kwargs == {
        "device_requests": [{"Driver": "nvidia", "Count": 2, "Capabilities": [["gpu"]]}],
        "shm_size": "2g",
    }
    assert config.image == "boneflow-gpu:latest" and config.image_pull_policy == "IfNotPresent"
    assert config.env["BONEFLOW_PROJECT_DIR"] == "/opt/boneflow"
    assert config.env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    assert config.auto_remove is True


def test_docker_create_kwargs_reach_docker_py():
    """The worker drops container_create_kwargs that name one of its own fields; shm_size and
    device_requests are not fields, so they reach docker-py's create call."""
    from prefect_docker.worker import DockerWorker

    config, _ = _render(DockerWorkerJobConfiguration, DOCKER_TEMPLATE, {})
    assert not {"shm_size", "device_requests"} & set(DockerWorkerJobConfiguration.model_fields)

    class _NoDaemon:  # get_extra_hosts asks the daemon's version only for a local API URL
        def version(self):
            return {"Version": "27.0.0"}

    settings = DockerWorker(work_pool_name="gpu-docker")._build_container_settings(_NoDaemon(), config)
    assert settings["shm_size"] == "2g" and settings["device_requests"][0]["Count"] == 1
    assert "ipc_mode" not in settings


@pytest.mark.parametrize("values,field", [({"gpu_count": 0}, "gpu_count"), ({"gpu_count": -1}, "gpu_count")])
def test_docker_variables_out_of_bounds_are_refused(values, field):
    with pytest.raises(ValidationError, match=field):
        _server_check(DOCKER_TEMPLATE, values)
