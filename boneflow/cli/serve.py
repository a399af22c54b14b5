"""CLI commands for serving: predict, app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from boneflow.config import DEFAULT_STORE


def _not_an_image_file(path: Path) -> str | None:
    """What is wrong with `path` as an image argument, before it is opened (a FIFO would block)."""
    if path.is_dir():
        return f"{path}: a folder, not an image file; give the image files in it (e.g. {path}/*.png)"
    if path.exists() and not path.is_file():
        return f"{path}: not a regular file (a FIFO, socket or device); give an image file"
    if not path.exists():
        return f"{path}: no such file"
    return None


def predict(
    images: Annotated[list[Path], typer.Argument(help="X-ray image files (PNG or JPEG).")],
    store: Annotated[
        str, typer.Option("--store", help="Store URL: folder, file://... or s3://bucket/prefix.")
    ] = DEFAULT_STORE,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Use this published run instead of the champion.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Model cache (default $BONEFLOW_CACHE or ~/.cache/boneflow).")
    ] = None,
) -> None:
    """One JSON line per image: {path, label, prob_fractured, run_id}; unreadable files get an
    "error" line and the command exits 2 at the end."""
    from boneflow.cli.errors import EXIT_BAD_INPUT, print_error
    from boneflow.errors import BoneflowError
    from boneflow.serve.predictor import Predictor

    predictor = Predictor.from_store(store, run_id, cache_dir=cache_dir)
    failed = 0
    for path in images:
        line: dict = {"path": str(path)}
        error = _not_an_image_file(path)
        if error is None:
            try:
                line.update(predictor.predict(path))
            except BoneflowError as err:
                error = f"{path}: {err}; give a PNG or JPEG X-ray"
            except OSError as err:
                error = f"{path}: cannot read the file ({err.strerror or err})"
        if error is not None:
            failed += 1
            line.update(error=error, run_id=predictor.run_id)
        typer.echo(json.dumps(line))
    if failed:
        # not an exception: every image was answered, some with an "error" line
        print_error(f'{failed} of {len(images)} images could not be read (see their "error" lines)')
        raise typer.Exit(EXIT_BAD_INPUT)


def app(
    store: Annotated[
        str, typer.Option("--store", help="Store URL whose champion is served (reloaded when it changes).")
    ] = DEFAULT_STORE,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 7860,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the app on the network.")
    ] = "127.0.0.1",
    max_mb: Annotated[float, typer.Option("--max-mb", min=0.01, help="Largest upload accepted, in MiB.")] = 25.0,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", min=1, help="Largest upload accepted, in pixels (width x height).")
    ] = 40_000_000,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Model cache (default $BONEFLOW_CACHE or ~/.cache/boneflow).")
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=0,
            help="CPU threads for the model; 0 = torch's default (all cores). "
            "1 keeps latency steady on a machine shared with other work.",
        ),
    ] = 0,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            envvar="BONEFLOW_APP_AUTH",
            show_default=False,
            help="Require a login, as user:password. Prefer the environment variable: a command line "
            "is visible to other users of the machine.",
        ),
    ] = None,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=1, help="Requests allowed to wait; more get 'queue is full'.")
    ] = 20,
) -> None:
    """Gradio app on the champion: upload an X-ray, see the label, probability and Grad-CAM."""
    from boneflow.cli.train import set_threads
    from boneflow.serve.app import launch_app, parse_auth
    from boneflow.serve.uploads import UploadLimits

    set_threads(threads)
    launch_app(
        store,
        host=host,
        port=port,
        cache_dir=cache_dir,
        max_queue=max_queue,
        auth=parse_auth(auth),
        limits=UploadLimits(max_bytes=int(max_mb * 2**20), max_pixels=max_pixels),
    )
