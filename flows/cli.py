"""The `boneflow` console script: the core's commands plus `boneflow run`.

`boneflow run` drives the retrain flow, so it lives here on the orchestration side; the core's
commands (boneflow/cli/main.py) never import Prefect, flows or tasks."""

from __future__ import annotations

from boneflow.cli.main import build_app
from flows.cli_run import run

app = build_app(run=run)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
