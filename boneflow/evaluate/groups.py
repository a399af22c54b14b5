"""Accuracy intervals that respect duplicate groups.

A split keeps whole duplicate groups (data/grouping.py), but a group may hold several files:
near copies and turned re-saves of one radiograph. Their predictions are not independent, so
the Wilson interval over files is too narrow (on the Kaggle sample the regrouped test holds 128
files of 26 radiographs). The cluster bootstrap resamples whole groups with replacement and
recomputes accuracy over the files they hold: its interval is the one to read when groups are
few.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RESAMPLES = 2000  # percentile ends of 2,000 resamples move by < 0.01 between seeds at n = 26


def split_groups(packed, split: str) -> list[str] | None:
    """Each file's duplicate group in `split`, from the pack's splits.json; None when the pack
    has no splits.json (in-memory splits, packs made before it) or a file is not listed."""
    folder = getattr(packed, "dir", None)
    if folder is None or not (Path(folder) / "splits.json").is_file():
        return None
    listed = json.loads((Path(folder) / "splits.json").read_text()).get("files", {})
    paths = packed.split(split).paths
    if not all(p in listed for p in paths):
        return None
    return [str(listed[p].get("group") or p) for p in paths]


def group_bootstrap_interval(
    correct: Sequence[bool] | np.ndarray, groups: Sequence[str], *, resamples: int = RESAMPLES, seed: int = 0
) -> list[float]:
    """95% percentile interval of accuracy when whole groups are resampled with replacement."""
    hits = np.asarray(correct, dtype=np.float64)
    if len(hits) != len(groups):
        raise ValueError(f"{len(hits)} results but {len(groups)} group ids")
    if len(hits) == 0:
        return [0.0, 1.0]
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    per_group_hits = np.bincount(index, weights=hits)
    per_group_n = np.bincount(index).astype(np.float64)
    k = len(per_group_n)
    draws = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=resamples)
    accuracy = (draws @ per_group_hits) / (draws @ per_group_n)
    lo, hi = np.percentile(accuracy, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def with_group_interval(metrics: dict, correct: np.ndarray, groups: list[str] | None) -> dict:
    """`metrics` plus `groups` (distinct groups) and `accuracy_ci95_groups` when groups are known."""
    if groups is None:
        return metrics
    return {
        **metrics,
        "groups": len(set(groups)),
        "accuracy_ci95_groups": group_bootstrap_interval(correct, groups),
    }
