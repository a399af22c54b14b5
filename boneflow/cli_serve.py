"""CLI commands for serving: predict, app. (Owned by the serving part.)

Heavy imports (torch, gradio) happen inside the commands so `boneflow --help` stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from boneflow.config import DEFAULT_STORE


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def predict(
    images: list[Path] = typer.Argument(..., help="X-ray image files (PNG or JPEG)."),
    store: str = typer.Option(DEFAULT_STORE, "--store", help="Store URL: folder, file://... or s3://bucket/prefix."),
    run_id: str | None = typer.Option(None, "--run-id", help="Use this published run instead of the champion."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Model cache (default $BONEFLOW_CACHE or ~/.cache/boneflow)."
    ),
) -> None:
    """One JSON line per image: {path, label, prob_fractured, run_id}; unreadable files get an
    "error" line and the command exits 1 at the end."""
    from boneflow.errors import BoneflowError

    try:
        from boneflow.serve.predictor import Predictor

        predictor = Predictor.from_store(store, run_id, cache_dir=cache_dir)
    except BoneflowError as err:
        _fail(str(err))
    failed = 0
    for path in images:
        line: dict = {"path": str(path)}
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
            line.update(predictor.predict(path))
        except BoneflowError as err:
            line.update(error=f"{path}: {err}; give a PNG or JPEG X-ray", run_id=predictor.run_id)
        except OSError as err:
            line.update(error=f"{path}: cannot read the file ({err.strerror or err})", run_id=predictor.run_id)
        if "error" in line:
            failed += 1
        typer.echo(json.dumps(line))
    if failed:
        typer.echo(f'error: {failed} of {len(images)} images could not be read (see their "error" lines)', err=True)
        raise typer.Exit(1)


def app(
    store: str = typer.Option(
        DEFAULT_STORE, "--store", help="Store URL whose champion is served (reloaded when it changes)."
    ),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the app on the network."),
    max_mb: float = typer.Option(25.0, "--max-mb", min=0.01, help="Largest upload accepted, in MiB."),
    max_pixels: int = typer.Option(
        40_000_000, "--max-pixels", min=1, help="Largest upload accepted, in pixels (width x height)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Model cache (default $BONEFLOW_CACHE or ~/.cache/boneflow)."
    ),
    threads: int = typer.Option(
        0,
        "--threads",
        min=0,
        help="CPU threads for the model; 0 = torch's default (all cores). "
        "1 keeps latency steady on a machine shared with other work.",
    ),
    auth: str | None = typer.Option(
        None,
        "--auth",
        envvar="BONEFLOW_APP_AUTH",
        show_default=False,
        help="Require a login, as user:password. Prefer the environment variable: a command line "
        "is visible to other users of the machine.",
    ),
    max_queue: int = typer.Option(20, "--max-queue", min=1, help="Requests allowed to wait; more get 'queue is full'."),
) -> None:
    """Gradio app on the champion: upload an X-ray, see the label, probability and Grad-CAM."""
    from boneflow.errors import BoneflowError

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        from boneflow.serve.app import launch_app, parse_auth
        from boneflow.serve.uploads import UploadLimits

        launch_app(
            store,
            host=host,
            port=port,
            cache_dir=cache_dir,
            max_queue=max_queue,
            auth=parse_auth(auth),
            limits=UploadLimits(max_bytes=int(max_mb * 2**20), max_pixels=max_pixels),
        )
    except BoneflowError as err:
        _fail(str(err))
