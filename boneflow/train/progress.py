"""A ready-made `on_epoch` callback for terminals: one progress-bar line per epoch on stderr."""

from __future__ import annotations

import sys
from typing import TextIO


def epoch_line(stats: dict, *, width: int = 20) -> str:
    done = int(width * stats["epoch"] / max(stats["epochs"], 1))
    bar = "#" * done + "-" * (width - done)
    return (
        f"[{bar}] epoch {stats['epoch']}/{stats['epochs']}  "
        f"train loss {stats['train_loss']:.4f} acc {stats['train_acc']:.3f}  "
        f"val loss {stats['val_loss']:.4f} acc {stats['val_acc']:.3f}  "
        f"{stats['seconds']:.1f}s {stats['img_per_s']:.0f} img/s  lr {stats['lr']:.2e}"
    )


class EpochPrinter:
    """Callable `on_epoch` for fit(): prints `epoch_line(stats)`."""

    def __init__(self, *, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, stats: dict) -> None:
        print(epoch_line(stats), file=self.stream or sys.stderr, flush=True)
