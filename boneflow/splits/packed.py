"""The packed splits as training and evaluation read them: `PackedSplits` is what `fit`,
`score_splits` and the champion re-scoring take, satisfied by `pack.PackedDataset` (a packed
folder, memory-mapped) and `InMemorySplits` (arrays in memory: the synthetic set of tests and
benchmarks, or a champion's evaluation splits decoded again at its own size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from boneflow.intake.layout import CLASSES


@dataclass(frozen=True)
class SplitArrays:
    images: np.ndarray  # uint8 [N, S, S]; memory-mapped when read from a packed folder
    labels: np.ndarray  # int64 [N]
    paths: list[str]  # relpaths under the dataset root, in row order; [] for generated images


class PackedSplits(Protocol):
    # Read-only properties, so frozen dataclasses satisfy the Protocol too.
    @property
    def size(self) -> int:
        """The stored image side in pixels (images are [N, size, size])."""

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names; a label is an index into them."""

    def split_names(self) -> tuple[str, ...]:
        """The splits held, e.g. train, val, test, test_clean, official_test."""

    def split(self, name: str) -> SplitArrays:
        """One split's arrays; KeyError naming the splits held when `name` is not one of them."""


@dataclass
class InMemorySplits:
    """`PackedSplits` over arrays already in memory."""

    splits: dict[str, SplitArrays]
    size: int
    classes: tuple[str, ...] = CLASSES

    def split_names(self) -> tuple[str, ...]:
        return tuple(self.splits)

    def split(self, name: str) -> SplitArrays:
        if name not in self.splits:
            raise KeyError(f"no split {name!r} in these packed splits (they hold {sorted(self.splits)})")
        return self.splits[name]
