"""CLI command `boneflow run`: the retrain flow in this process, on Prefect's ephemeral API or
the server PREFECT_API_URL names (README, "Run it locally (no server)"). Prefect is imported only
when the command runs, so `boneflow --help` and the core commands stay light. Exit codes and the
one-line error are every command's (boneflow/cli/errors.py); the display is flows/cli_progress.py.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from boneflow.cli.errors import (
    EXIT_ERROR,
    EXIT_REJECTED,
    SettingsError,
    describe_validation_error,
    exit_code_for,
    print_error,
)
from boneflow.cli.options import flag_name, with_config_options
from boneflow.config import RetrainConfig
from boneflow.gate.decision import GATE_REJECTED
from boneflow.store.errors import ObjectNotFoundError
from flows.cli_progress import RunDisplay, run_progress

__all__ = ["EXIT_REJECTED", "EXIT_STORE_CHANGED", "run"]

# Neither bad settings nor bad data: something the run had written, or needs, left the store
# while it ran. Its own code, so a scheduler can tell "run again" from "fix something".
EXIT_STORE_CHANGED = 4
STORE_CHANGED = (
    "An object this run needs is gone from the store: deleted while the run went on (a concurrent "
    "`boneflow gc` with a --grace-hours shorter than a run, or another writer) or before it "
    "started. Run again (or press Retry); give gc a grace period longer than any run."
)


def _summary(state, config: RetrainConfig) -> int:
    if state.is_completed() and state.name == "Skipped":
        typer.secho(f"skipped: {state.message}", fg=typer.colors.YELLOW)
        return 0
    if state.is_completed():
        out = state.result()
        m = out["judged"]
        lo, hi = m["accuracy_ci95"]
        auroc = "–" if m.get("auroc") is None else f"{m['auroc']:.3f}"
        typer.secho(f"promoted run {out['run_id']} to champion in {config.store_url}", fg=typer.colors.GREEN)
        typer.echo(
            f"  {out['judged_split']}: accuracy {m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}], "
            f"fractured recall {m['recall_fractured']:.3f}, AUROC {auroc}, "
            f"n={m['n']} radiographs ({m.get('files', '?')} files)"
        )
        typer.echo(f"  {out['gate']}")
        report = f"runs/{out['run_id']}/report.md"
        typer.echo(f"  report: {report if '://' in config.store_url else Path(config.store_url, report)}")
        return 0
    message = state.message or ""
    if state.name == GATE_REJECTED:
        typer.secho("not promoted: " + message, fg=typer.colors.RED, err=True)
        typer.echo(
            f"  the run is published under runs/ in {config.store_url} for inspection; the champion is unchanged",
            err=True,
        )
        return EXIT_REJECTED
    error = state.result(raise_on_failure=False)
    if not isinstance(error, BaseException):
        print_error(message or f"flow run ended {state.name}")
        return EXIT_ERROR
    if isinstance(error, ObjectNotFoundError):
        print_error(f"{type(error).__name__}: {error} {STORE_CHANGED}")
        return EXIT_STORE_CHANGED
    print_error(f"{type(error).__name__}: {error}")
    return exit_code_for(error)


def quiet_prefect_console() -> None:
    """Prefect prints every log line (and task tracebacks) to the console; the progress display
    and final message replace them. The lines still reach the API (`--verbose` shows them)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)


def prefect_environment() -> None:
    """Prefect's settings for `boneflow run`, set before Prefect is imported; a value the user
    set wins."""
    # Task results must persist for Retry/caching; the flow also sets it per task.
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The in-process API sends no usage data, and the client neither: no telemetry notice on the
    # first run in a terminal (`import prefect` prints it) and nothing leaves an offline run.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Prefect's 20 s for the in-process API to come up is too short on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@with_config_options
def run(
    config_fields: dict,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show Prefect's log lines (and tracebacks) instead of the progress display."
        ),
    ] = False,
) -> None:
    """Acquire, validate, audit, pack, train, evaluate, gate and publish; promote when the gate passes.

    Exit 0: promoted or skipped; 3: gate rejected (run published, champion unchanged); 2: bad
    settings or data; 4: an object the run needs left the store meanwhile (a concurrent gc);
    1: other error."""
    try:
        config = RetrainConfig(**config_fields)
    except ValidationError as err:
        raise SettingsError(describe_validation_error(err, flag_name)) from None
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise SettingsError(
            f"--data-dir {config.data_dir}: not a folder. Point it at a copy of the dataset "
            "(or make one: boneflow demo-data PATH)."
        )
    prefect_environment()
    from flows.retrain import retrain

    if not verbose:
        quiet_prefect_console()
    with RunDisplay(run_progress(), config.epochs) as display:
        state = retrain.with_options(on_running=[display.on_running])(config, return_state=True)
    code = _summary(state, config)
    sys.stdout.flush()
    raise typer.Exit(code)
