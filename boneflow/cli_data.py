"""CLI commands for data: audit, demo-data, bench prep. (Owned by the data part.)"""

from __future__ import annotations

import typer


def audit() -> None:
    """Validate + leakage-audit a dataset folder (not implemented yet)."""
    raise typer.Exit(2)


def demo_data() -> None:
    """Write a synthetic dataset (not implemented yet)."""
    raise typer.Exit(2)


def bench_prep() -> None:
    """Benchmark data preparation (not implemented yet)."""
    raise typer.Exit(2)
