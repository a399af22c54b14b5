"""CLI commands for training benchmarks: bench train, bench infer. (Owned by the training part.)"""

from __future__ import annotations

import typer


def bench_train() -> None:
    """Benchmark training (not implemented yet)."""
    raise typer.Exit(2)


def bench_infer() -> None:
    """Benchmark inference (not implemented yet)."""
    raise typer.Exit(2)
