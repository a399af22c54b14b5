"""CLI commands for serving: predict, app. (Owned by the serving part.)"""

from __future__ import annotations

import typer


def predict() -> None:
    """Predict with the champion (not implemented yet)."""
    raise typer.Exit(2)


def app() -> None:
    """Gradio app (not implemented yet)."""
    raise typer.Exit(2)
