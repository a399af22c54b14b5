#!/usr/bin/env bash
# Command 2 of the README: set up (idempotent, incl. Chromium) and run every test:
# unit, flows, integration (real S3 server), e2e (real Prefect server + workers), browser.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not e2e").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
# Lint, format, types and import layers first: seconds, where the tests take minutes.
scripts/check.sh
# pytest exits 5 when it collected no tests; set -e turns that (and any failure) into a failure.
# Two processes, one test file each at a time (module fixtures such as a Prefect stack stay in
# one process): the e2e files mostly wait on servers and workers, so the unit files run beside
# them. `-n 0` after it runs everything in this process.
exec .venv/bin/python -m pytest -n "${BONEFLOW_TEST_PROCESSES:-2}" --dist loadfile "$@"
