"""CLI command `boneflow gc`: delete what finished runs no longer need (store and work dir);
README, "Security model", says what it keeps, deletes and skips."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from boneflow.config import DEFAULT_STORE
from boneflow.errors import BoneflowError
from boneflow.settings import WORK_DIR_ENV, work_root

MAX_GRACE_HOURS = 24 * 365 * 10  # ten years: more keeps everything, which --dry-run says better


def _grace_hours(value: float) -> float:
    # Typer's min/max let NaN through (every comparison with it is false), and inf overflows
    # timedelta: both would end in a traceback instead of a usage error.
    if not math.isfinite(value) or not 0 <= value <= MAX_GRACE_HOURS:
        raise typer.BadParameter(f"{value} is not a number of hours between 0 and {MAX_GRACE_HOURS}.")
    return value


def gc(
    store: Annotated[
        str, typer.Option("--store", help="Store URL: folder, file://... or s3://bucket/prefix.")
    ] = DEFAULT_STORE,
    keep_runs: Annotated[
        int,
        typer.Option(
            "--keep-runs", min=0, help="Finished runs (besides the champion) whose model and reports are kept."
        ),
    ] = 5,
    grace_hours: Annotated[
        float,
        typer.Option(
            "--grace-hours",
            callback=_grace_hours,
            help="Touch nothing newer than this: a younger run may still be training or publishing.",
        ),
    ] = 24.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir", help=f"Local work folder to clean too (default ${WORK_DIR_ENV} or ~/.cache/boneflow)."
        ),
    ] = None,
    skip_work_dir: Annotated[bool, typer.Option("--skip-work-dir", help="Clean the store only.")] = False,
) -> None:
    """Keep the champion and the newest N runs' models and reports; delete finished runs'
    checkpoints, older runs, runs that never got a manifest, stale temp files, and the local work
    folders of finished runs, all only when older than the grace period. Prints a JSON report."""
    from boneflow.registry.gc import collect_garbage
    from boneflow.store import open_store

    opened = open_store(store)
    root = getattr(opened, "root", None)
    if root is not None and not root.is_dir():  # a typo would otherwise report "nothing to do"
        raise BoneflowError(f"store folder {root} does not exist; check --store.")
    report = collect_garbage(
        opened,
        work_dir=None if skip_work_dir else (work_dir or work_root()),
        keep_runs=keep_runs,
        grace=timedelta(hours=grace_hours),
        dry_run=dry_run,
    )
    typer.echo(json.dumps(report, indent=2))
