"""CLI command `boneflow run`: the retrain flow on embedded defaults.

It drives a flow, so it lives on the orchestration side; `flows/cli.py` adds it to the core's
commands. Runs `flows.retrain.retrain` in this process on Prefect's ephemeral API (no server
needed; set PREFECT_API_URL to report to a real one), a folder store and local dispatch. The
flow (and with it Prefect) is imported only when the command runs, so `boneflow --help` and
the core commands stay light.

Exit codes: 0 promoted or skipped, 3 gate rejected, 1 any other error (one clear message, no
traceback; the Prefect logs above it name the stage).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from boneflow.config import RetrainConfig
from boneflow.config_options import flag_name, with_config_options
from boneflow.gate import GATE_REJECTED

EXIT_REJECTED = 3
# The core logs the pretrained-weights download here; under the live display torch.hub's byte
# bar on stderr is overdrawn, so the stage line names the download instead.
WEIGHTS_LOGGER = "boneflow.train.model"


class _Progress(logging.Handler):
    """Turns the flow's log records into a progress display: a spinner naming the current
    stage and a bar over the training epochs."""

    def __init__(self, progress, epochs: int):
        super().__init__(logging.INFO)
        self.progress = progress
        self.stage = progress.add_task("starting", total=None)
        self.epochs = progress.add_task("training", total=epochs, visible=False)
        self.done = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            task_run = getattr(record, "task_run_name", None)
            if record.name == WEIGHTS_LOGGER:
                self.progress.update(self.stage, description=message[:90])
            elif task_run and message.startswith("Finished in state"):
                self.done += 1
                stage = task_run.rsplit("-", 1)[0]
                self.progress.update(self.stage, description=f"{stage} done ({self.done} stages)")
            elif task_run:
                stage = task_run.rsplit("-", 1)[0]
                if message.startswith("epoch "):
                    epoch = int(message.split()[1].split("/")[0])
                    self.progress.update(self.epochs, completed=epoch, visible=True, description=message.split(";")[0])
                else:
                    self.progress.update(self.stage, description=f"{stage}: {message[:90]}")
        except Exception:  # a display glitch must never break the run
            pass


def _build_config(**fields) -> RetrainConfig:
    from pydantic import ValidationError

    try:
        return RetrainConfig(**fields)
    except ValidationError as err:
        problems = "; ".join(
            f"{flag_name(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}" for e in err.errors()
        )
        _fail(f"invalid settings: {problems}")


def _fail(message: str, code: int = 1):
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _error_message(state) -> str:
    error = state.result(raise_on_failure=False)
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return state.message or f"flow run ended {state.name}"


def _summary(state, config: RetrainConfig) -> int:
    if state.is_completed() and state.name == "Skipped":
        typer.secho(f"skipped: {state.message}", fg=typer.colors.YELLOW)
        return 0
    if state.is_completed():
        out = state.result()
        m = out["test_clean"]
        lo, hi = m["accuracy_ci95"]
        typer.secho(f"promoted run {out['run_id']} to champion in {config.store_url}", fg=typer.colors.GREEN)
        typer.echo(
            f"  leak-free test: accuracy {m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}], "
            f"fractured recall {m['recall_fractured']:.3f}, n={m['n']}"
        )
        typer.echo(f"  {out['gate']}")
        typer.echo(
            f"  report: {Path(config.store_url, 'runs', out['run_id'], 'report.md')}"
            if "://" not in config.store_url
            else f"  report: runs/{out['run_id']}/report.md"
        )
        return 0
    message = state.message or ""
    if state.name == GATE_REJECTED:
        typer.secho("not promoted: " + message, fg=typer.colors.RED, err=True)
        typer.echo(
            f"  the run is published under runs/ in {config.store_url} for inspection; the champion is unchanged",
            err=True,
        )
        return EXIT_REJECTED
    typer.secho(f"error: {_error_message(state)}", fg=typer.colors.RED, err=True)
    return 1


@with_config_options
def run(
    config_fields: dict,
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show Prefect's log lines (and tracebacks) instead of the progress display."
    ),
) -> None:
    """Acquire, validate, audit, pack, train, evaluate, gate and publish; promote when the gate passes.

    Exit 0: promoted or skipped; 3: gate rejected (run published, champion unchanged); 1: error."""
    config = _build_config(**config_fields)
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        _fail(
            f"--data-dir {config.data_dir}: not a folder. Point it at a copy of the dataset "
            "(or make one: boneflow demo-data PATH)."
        )
    # Task results must persist for Retry/caching; the flow also sets it per task.
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's 20 s for the in-process API to come up is too short on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from flows.retrain import retrain
    from tasks.runtime import quiet_prefect_console

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    handler = _Progress(progress, config.epochs)
    if not verbose:
        quiet_prefect_console()
    watched = [logging.getLogger(n) for n in ("prefect.task_runs", "prefect.flow_runs", WEIGHTS_LOGGER)]
    logging.getLogger(WEIGHTS_LOGGER).setLevel(logging.INFO)
    for logger in watched:
        logger.addHandler(handler)
    try:
        with progress:
            state = retrain(config, return_state=True)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as err:  # Prefect itself failed (not the flow): say so plainly
        _fail(f"{type(err).__name__}: {err}")
    finally:
        for logger in watched:
            logger.removeHandler(handler)
    code = _summary(state, config)
    sys.stdout.flush()
    raise typer.Exit(code)
