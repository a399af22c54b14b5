"""The `boneflow` console script: assembles the commands defined in the cli_*.py modules.

Each cli_*.py module keeps heavy imports (torch, gradio, prefect) inside its functions so
`boneflow --help` stays fast and `boneflow predict` never loads Prefect."""

from __future__ import annotations

import typer

from boneflow import cli_data, cli_gc, cli_run, cli_serve, cli_train

app = typer.Typer(
    name="boneflow",
    help="Keep a bone-fracture X-ray classifier retrained, evaluated, gated and served.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: JSON with ours vs the seed-style baseline, same run, and the ratio.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")

app.command("run")(cli_run.run)
app.command("audit")(cli_data.audit)
app.command("demo-data")(cli_data.demo_data)
app.command("predict")(cli_serve.predict)
app.command("app")(cli_serve.app)
app.command("gc")(cli_gc.gc)
bench_app.command("prep")(cli_data.bench_prep)
bench_app.command("train")(cli_train.bench_train)
bench_app.command("infer")(cli_train.bench_infer)


def main() -> None:
    app()
