"""The core's commands, assembled from the modules beside it; `build_app` adds commands from other
layers (flows/cli.py adds `boneflow run` and is the `boneflow` console script). Each command
keeps heavy imports (torch, gradio) inside its function so `boneflow --help` stays fast; none
imports Prefect, flows or tasks (import-linter checks it), so they run with only the core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from boneflow.cli import data as cli_data
from boneflow.cli import gc as cli_gc
from boneflow.cli import serve as cli_serve
from boneflow.cli import train as cli_train
from boneflow.cli.errors import ErrorHandlingGroup


def build_app(**commands: Callable[..., Any]) -> typer.Typer:
    """The `boneflow` app: `commands` (name → function) first, then the core's commands."""
    app = typer.Typer(
        name="boneflow",
        cls=ErrorHandlingGroup,
        help="Keep a bone-fracture X-ray classifier retrained, evaluated, gated and served.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    bench_app = typer.Typer(
        help="Benchmarks: JSON with ours vs the seed-style baseline, same run, and the ratio.", no_args_is_help=True
    )
    app.add_typer(bench_app, name="bench")

    for name, command in commands.items():
        app.command(name)(command)
    app.command("audit")(cli_data.audit)
    app.command("demo-data")(cli_data.demo_data)
    app.command("predict")(cli_serve.predict)
    app.command("app")(cli_serve.app)
    app.command("gc")(cli_gc.gc)
    bench_app.command("prep")(cli_data.bench_prep)
    bench_app.command("train")(cli_train.bench_train)
    bench_app.command("infer")(cli_train.bench_infer)
    return app


app = build_app()


def main() -> None:
    app()
