"""CLI command `boneflow run`: the retrain flow on embedded defaults. (Owned by orchestration.)"""

from __future__ import annotations

import typer


def run() -> None:
    """Run the retrain flow (not implemented yet)."""
    raise typer.Exit(2)
