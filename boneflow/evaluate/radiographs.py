"""Files to radiographs, the unit every headline figure counts (README, "Honest evaluation", item
4): scoring files would weigh each radiograph by its copies (a test of 574 files can be 113
radiographs). Files with no known group (packs without splits.json, in-memory splits) are their
own group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Radiographs:
    """One row per judged radiograph, ordered by group id."""

    groups: list[str]
    labels: np.ndarray  # int64 [R]
    probability: np.ndarray  # float64 [R]: mean of the files' calibrated P(fractured)
    files: np.ndarray  # int64 [R]: files per radiograph
    mixed: list[str]  # groups left out: their files carry both labels

    def __len__(self) -> int:
        return len(self.groups)

    def predicted(self, threshold: float) -> np.ndarray:
        return (self.probability >= threshold).astype(np.int64)


def group_of_each_file(paths: Sequence[str], groups: Sequence[str | None] | None) -> list[str]:
    """The group id per file; a file without one is its own radiograph (keyed by its path)."""
    if groups is None:
        return [f"file:{p}" for p in paths]
    if len(groups) != len(paths):
        raise ValueError(f"{len(paths)} files but {len(groups)} group ids")
    return [str(g) if g else f"file:{p}" for p, g in zip(paths, groups)]


def by_radiograph(groups: Sequence[str], labels, probability) -> Radiographs:
    """Mean probability and common label per group; mixed-label groups left out (listed)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probability, dtype=np.float64)
    if not (len(groups) == len(y) == len(p)):
        raise ValueError(f"{len(groups)} group ids, {len(y)} labels, {len(p)} probabilities: one each per file")
    ids, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    files = np.bincount(index)
    positives = np.bincount(index, weights=y)
    mean_p = np.bincount(index, weights=p) / files
    mixed = (positives > 0) & (positives < files)
    return Radiographs(
        groups=[str(g) for g in ids[~mixed]],
        labels=(positives[~mixed] > 0).astype(np.int64),
        probability=mean_p[~mixed],
        files=files[~mixed].astype(np.int64),
        mixed=[str(g) for g in ids[mixed]],
    )
