#!/usr/bin/env bash
# Command 1 of the README: set up (idempotent) and run the main job.
#   scripts/run.sh                          retrain on the real Kaggle dataset (needs Kaggle access)
#   scripts/run.sh --data-dir PATH ...      retrain on a local copy; any `boneflow run` flag works
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/boneflow run "$@"
