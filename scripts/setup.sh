#!/usr/bin/env bash
# Idempotent environment setup: a .venv in the repo with boneflow installed (editable).
# Re-running reuses the venv and only reinstalls when pyproject.toml changed.
#   scripts/setup.sh          runtime + test dependencies + the gpu pool workers (kubernetes, docker)
#   scripts/setup.sh --browser  also Debian's chromium (for the browser tests; needs root/apt)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi

stamp=.venv/.boneflow-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing boneflow and its dependencies into .venv (torch takes ~70 s)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  # torch/torchvision first, as the pinned pair pyproject.toml names (a mismatched pair fails to import).
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
  # setuptools' notice for every editable install ("Editable installation ... be careful with
  # folders named like the package") says nothing about this project: only that one is filtered.
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -e '.[test,kubernetes,docker]'
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date" >&2
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian chromium + chromium-driver for the browser tests" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
