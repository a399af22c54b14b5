"""CLI commands for training benchmarks: `boneflow bench train`, `boneflow bench infer`; both
print one JSON object on stdout."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from boneflow.settings import TrainSettings


def set_threads(threads: int) -> None:
    # 0 keeps torch's default (one per physical core, or OMP_NUM_THREADS when the user set it).
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def bench_train(
    images: Annotated[
        int, typer.Option(help="Synthetic images written as JPEGs and packed (same files for both).", min=16)
    ] = 256,
    size: Annotated[
        int, typer.Option(help="Crop side the network sees, in pixels.", min=32, max=512)
    ] = TrainSettings.image_size,
    batch_size: Annotated[int, typer.Option(help="Images per training step.", min=2)] = 32,
    steps: Annotated[int, typer.Option(help="Timed training steps per side (after 2 warm-up steps).", min=1)] = 8,
    data_batches: Annotated[
        int,
        typer.Option(
            help="Batches timed for our data supply (the seed's: as many, and at least 4x its prefetch).", min=1
        ),
    ] = 64,
    seed_workers: Annotated[
        int | None, typer.Option(help="DataLoader workers of the seed-style loop; default one per CPU core.", min=0)
    ] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads; 0 keeps torch's default.", min=0)] = 0,
) -> None:
    """Train img/s: ours (1-ch, bf16 where fast, channels_last, batch augmentation on packed
    uint8) vs the seed-style ImageFolder+PIL loop on the same images and size; plus data supply."""
    set_threads(threads)
    from boneflow.bench.train import bench_train as run

    result = run(
        images=images,
        size=size,
        batch_size=batch_size,
        steps=steps,
        seed_workers=seed_workers,
        data_batches=data_batches,
    )
    typer.echo(json.dumps(result, indent=2))


def bench_infer(
    store: Annotated[
        str | None, typer.Option(help="Store URL; benchmark its champion. Empty: random-init model.")
    ] = None,
    size: Annotated[
        int, typer.Option(help="Crop side (ignored with --store: the champion's own).", min=32, max=512)
    ] = TrainSettings.image_size,
    runs: Annotated[
        int, typer.Option(help="Timed single-image predictions (each side, each thread count).", min=5)
    ] = 50,
    batch_size: Annotated[int, typer.Option(help="Batch size of the throughput measurement.", min=1)] = 64,
    batches: Annotated[int, typer.Option(help="Batches timed for the throughput measurement.", min=1)] = 3,
    threads: Annotated[
        int, typer.Option(help="torch CPU threads for the headline figures; 0 keeps torch's default.", min=0)
    ] = 0,
    compare_threads: Annotated[bool, typer.Option(help="Also time single images (and the app) at 1 thread.")] = True,
    app: Annotated[bool, typer.Option(help='Include the app\'s end-to-end latency ("app" section).')] = True,
    members: Annotated[
        int,
        typer.Option(
            help='Fold-ensemble members timed beside one member ("ensemble" section; with --store, the '
            "champion's own when it is an ensemble). 1 leaves the section out.",
            min=1,
            max=10,
        ),
    ] = 5,
) -> None:
    """Single-image p50/p95 latency (with and without JPEG decode) and batch throughput, ours vs
    the seed's predict path in the same run; plus the app's end-to-end latency for one image."""
    set_threads(threads)
    import torch

    from boneflow.bench.infer import bench_infer as run

    # torch's default (one per core, or OMP_NUM_THREADS) and 1: under CPU contention the
    # multi-thread OpenMP barriers stall, and one thread is the steadier choice for latency.
    counts = sorted({1, torch.get_num_threads()}) if compare_threads else [torch.get_num_threads()]
    result = run(
        store=store,
        size=size,
        runs=runs,
        batch_size=batch_size,
        batches=batches,
        thread_counts=counts,
        app=app,
        members=members,
    )
    typer.echo(json.dumps(result, indent=2))
