"""deployments/gpu.Dockerfile cannot be built here (no base-image pulls), so what can drift is
checked as text: the torch pins equal pyproject.toml's, the project sits where the pools and
the pull step expect it, it runs as a numeric non-root user, and nothing secret is baked in."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "deployments" / "gpu.Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps if d.startswith(("torch==", "torchvision==")))


def test_torch_pins_match_pyproject_and_come_with_cuda():
    pins = _pins()
    install = next(i for i in INSTRUCTIONS if "torch==" in i)
    assert f"torch=={pins['torch']}" in install and f"torchvision=={pins['torchvision']}" in install
    assert re.search(r"--index-url https://download.pytorch.org/whl/cu\d+", install)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert INSTRUCTIONS[0].startswith("FROM python:3.11") and ">=3.11" in requires and "<3.12" in requires


def test_project_lives_where_the_pools_say():
    assert "WORKDIR /opt/boneflow" in INSTRUCTIONS
    for pool in ("gpu-kubernetes.json", "gpu-docker.json"):
        template = json.loads((REPO / "deployments" / "pools" / pool).read_text())
        assert template["variables"]["properties"]["env"]["default"]["BONEFLOW_PROJECT_DIR"] == "/opt/boneflow"
    for package in ("boneflow", "tasks", "flows"):
        assert any(i.startswith(f"COPY {package} ") for i in INSTRUCTIONS), package
    ignore = [
        line.strip()
        for line in (REPO / "deployments" / "gpu.Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"  # an allow-list: a .venv, a local store or credentials never reach the build
    assert {"!boneflow/", "!tasks/", "!flows/", "!pyproject.toml", "!prefect.yaml"} <= set(ignore)


def test_non_root_numeric_user_no_entrypoint_no_secrets():
    user = [i for i in INSTRUCTIONS if i.startswith("USER ")]
    assert user and re.fullmatch(r"USER [1-9]\d*(:\d+)?", user[-1])  # numeric: runAsNonRoot checks it
    assert not any(i.startswith("ENTRYPOINT") for i in INSTRUCTIONS)  # the worker's args are the command
    env_and_args = " ".join(i for i in INSTRUCTIONS if i.startswith(("ENV ", "ARG ")))
    assert not re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|API_KEY", env_and_args, re.I)
