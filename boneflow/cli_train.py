"""CLI commands for training benchmarks: `boneflow bench train`, `boneflow bench infer`.

Both print one JSON object on stdout. torch and the benchmark modules are imported inside the
functions so `boneflow --help` stays fast."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer


def _threads(threads: int) -> None:
    # 0 keeps torch's default (one per physical core, or OMP_NUM_THREADS when the user set it).
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def bench_train(
    images: Annotated[int, typer.Option(help="Synthetic images written as JPEGs and packed (same files for both).", min=16)] = 256,
    size: Annotated[int, typer.Option(help="Crop side the network sees, in pixels.", min=32, max=512)] = 224,
    batch_size: Annotated[int, typer.Option(help="Images per training step.", min=2)] = 32,
    steps: Annotated[int, typer.Option(help="Timed training steps per side (after 2 warm-up steps).", min=1)] = 8,
    data_batches: Annotated[int, typer.Option(help="Batches timed for the data-supply comparison.", min=1)] = 8,
    seed_workers: Annotated[int, typer.Option(help="DataLoader workers of the seed-style loop.", min=0)] = 2,
    threads: Annotated[int, typer.Option(help="torch CPU threads; 0 keeps torch's default.", min=0)] = 0,
) -> None:
    """Train img/s: ours (1-ch, bf16 where fast, channels_last, batch augmentation on packed
    uint8) vs the seed-style ImageFolder+PIL loop on the same images and size; plus data supply."""
    _threads(threads)
    from boneflow.bench.train import bench_train as run

    result = run(images=images, size=size, batch_size=batch_size, steps=steps, seed_workers=seed_workers,
                 data_batches=data_batches)
    typer.echo(json.dumps(result, indent=2))


def bench_infer(
    store: Annotated[Optional[str], typer.Option(help="Store URL; benchmark its champion. Empty: random-init model.")] = None,
    size: Annotated[int, typer.Option(help="Crop side (ignored with --store: the champion's own).", min=32, max=512)] = 224,
    runs: Annotated[int, typer.Option(help="Timed single-image predictions.", min=5)] = 50,
    batch_size: Annotated[int, typer.Option(help="Batch size of the throughput measurement.", min=1)] = 64,
    threads: Annotated[int, typer.Option(help="torch CPU threads; 0 keeps torch's default.", min=0)] = 0,
) -> None:
    """Single-image p50/p95 latency (with and without JPEG decode) and batch throughput."""
    _threads(threads)
    from boneflow.bench.infer import bench_infer as run

    typer.echo(json.dumps(run(store=store, size=size, runs=runs, batch_size=batch_size), indent=2))
