# syntax=docker/dockerfile:1
# The training image of the gpu pool (deployments/pools/gpu-kubernetes.json, gpu-docker.json):
# CUDA torch pinned like pyproject.toml, the project at /opt/boneflow (where the deployments'
# pull step changes to), `prefect` on PATH, a non-root user, no secrets. Build from the
# repository root (gpu.Dockerfile.dockerignore keeps the context to the project's sources):
#
#   docker build -f deployments/gpu.Dockerfile -t registry.example.org/boneflow-gpu:0.1.0 .
#   docker push registry.example.org/boneflow-gpu:0.1.0
#
# Store credentials reach the container at run time (pod service account, a Secret, the pool's
# env), never at build time.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/opt/torch \
    BONEFLOW_PROJECT_DIR=/opt/boneflow

# The CUDA 13.0 builds of pyproject.toml's torch pins (2.14.1+cu130 satisfies ==2.14.1). The
# wheels bring the CUDA runtime; the GPU node needs only an NVIDIA driver that supports CUDA 13.0.
# Its own layer: the largest, and it changes only with the pins.
RUN pip install --index-url https://download.pytorch.org/whl/cu130 torch==2.14.1 torchvision==0.29.1

# pretrained=True (the default) reads ImageNet resnet18 weights from the torch hub cache
# ($TORCH_HOME): baked in, hash-checked, so no pod downloads them and pods need no egress.
RUN python -c "from torchvision.models import ResNet18_Weights; \
ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)"

WORKDIR /opt/boneflow
COPY pyproject.toml prefect.yaml ./
COPY boneflow ./boneflow
COPY tasks ./tasks
COPY flows ./flows
# Editable: one copy of the code, the one the pull step changes into.
RUN pip install -e . && prefect version

# Numeric, so Kubernetes' runAsNonRoot (set in gpu-kubernetes.json) can verify it.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin boneflow
USER 10001:10001

# No ENTRYPOINT: the workers run `prefect flow-run execute` as the container's command.
CMD ["prefect", "version"]
