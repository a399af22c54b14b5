#!/usr/bin/env bash
# Static checks, fast (seconds): lint, format, types of the core, the import layers.
# scripts/test.sh runs this before pytest; run it alone before a commit. Uses the repo's .venv
# when there is one (scripts/setup.sh), else the tools on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/ruff ]; then PATH="$PWD/.venv/bin:$PATH"; fi
# lint-imports imports the packages: make it read this checkout, not an installed copy.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ruff check .
ruff format --check .
mypy boneflow
lint-imports
