"""Cross-fitting views of a packed dataset (README, "Cross-fitting"): the pool of every file the
regroup policy kept, each with its fold from the pack's splits.json, and member i's splits:
train and an early-stopping slice from the other folds, `oof` = fold i, never seen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boneflow.errors import BoneflowError
from boneflow.splits.packed import InMemorySplits, PackedSplits, SplitArrays

POOL_SPLITS = ("train", "val", "test")  # what the regroup policy kept, once each
EARLY_STOP_SHARE = 8  # one radiograph in 8 of the other folds selects member i's epoch


class FoldError(BoneflowError):
    """The pack has no cross-fitting folds, or a fold cannot be trained (a class missing)."""


@dataclass(frozen=True)
class Pool:
    """The packed pool in one place: arrays row for row with each file's group and fold."""

    images: np.ndarray  # uint8 [N, S, S]
    labels: np.ndarray  # int64 [N]
    paths: list[str]
    groups: list[str]
    fold: np.ndarray  # int64 [N]
    folds: int


def early_stop_rank(group_id: str, *, seed: int) -> float:
    """A radiograph's place in [0, 1) for the early-stopping draw: a hash of its group id."""
    digest = hashlib.sha256(f"early-stop:{seed}:{group_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _early_stop_rows(pool: Pool, candidates: np.ndarray, *, seed: int) -> np.ndarray:
    """Rows of `candidates` whose radiograph is in the early-stopping slice; a class the hash
    left out there gets its lowest-ranked radiograph, so the slice can always judge both."""
    rank = np.array([early_stop_rank(pool.groups[i], seed=seed) for i in candidates])
    chosen = rank < 1 / EARLY_STOP_SHARE
    for label in np.unique(pool.labels[candidates]):
        of_class = pool.labels[candidates] == label
        if not (chosen & of_class).any():
            group = pool.groups[candidates[of_class][np.argmin(rank[of_class])]]
            chosen |= np.array([pool.groups[i] == group for i in candidates])
    return candidates[chosen]


def read_pool(packed: PackedSplits) -> Pool:
    """The pool of a pack planned with folds > 1; FoldError naming what is missing otherwise."""
    folder = getattr(packed, "dir", None)
    if folder is None or not (plan_path := Path(folder) / "splits.json").is_file():
        raise FoldError("cross-fitting needs a packed dataset with its splits.json (the folds are listed there)")
    plan = json.loads(plan_path.read_text())
    folds = int(plan.get("folds") or 1)
    if folds < 2:
        raise FoldError(f"{plan_path}: planned without cross-fitting folds (folds={folds}); re-pack with folds >= 2")
    listed = plan["files"]
    parts = [packed.split(name) for name in POOL_SPLITS if name in packed.split_names()]
    paths = [p for part in parts for p in part.paths]
    missing = [p for p in paths if listed.get(p, {}).get("fold") is None]
    if missing:
        raise FoldError(f"{plan_path}: {len(missing)} pool file(s) without a fold, e.g. {missing[0]!r}; re-pack")
    return Pool(
        images=np.concatenate([np.asarray(part.images) for part in parts]),
        labels=np.concatenate([np.asarray(part.labels, dtype=np.int64) for part in parts]),
        paths=paths,
        groups=[str(listed[p]["group"]) for p in paths],
        fold=np.array([int(listed[p]["fold"]) for p in paths], dtype=np.int64),
        folds=folds,
    )


def _take(pool: Pool, rows: np.ndarray) -> SplitArrays:
    return SplitArrays(images=pool.images[rows], labels=pool.labels[rows], paths=[pool.paths[i] for i in rows])


def member_splits(pool: Pool, fold: int, *, size: int, seed: int, classes: tuple[str, ...]) -> InMemorySplits:
    """What member `fold` trains on: `train` (the other folds less the early-stopping slice),
    `val` (the slice) and `oof` (fold `fold`, never seen)."""
    if not 0 <= fold < pool.folds:
        raise FoldError(f"fold {fold} is not one of 0..{pool.folds - 1}")
    others = np.flatnonzero(pool.fold != fold)
    val = _early_stop_rows(pool, others, seed=seed)
    parts = {"train": np.setdiff1d(others, val), "val": val, "oof": np.flatnonzero(pool.fold == fold)}
    for name in ("train", "val"):
        present = set(pool.labels[parts[name]].tolist())
        for label, cls in enumerate(classes):
            if label not in present:
                raise FoldError(
                    f"member {fold}: its {name} part ({len(parts[name])} files of the other folds) has no "
                    f"{cls!r} image; use fewer folds or more data"
                )
    return InMemorySplits({name: _take(pool, rows) for name, rows in parts.items()}, size, classes)


def planned_folds(packed: PackedSplits) -> int:
    """How many cross-fitting folds the pack was planned with (1: the single split, and an
    in-memory pack). A packed folder's manifest says it (its splits.json says the same)."""
    manifest = getattr(packed, "manifest", None) or {}
    return int((manifest.get("split_policy") or {}).get("folds") or 1)
