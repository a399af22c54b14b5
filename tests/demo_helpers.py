"""Test helpers around the demo data: in-memory packed splits with a learnable pattern, and the
ground-truth duplicate groups of a demo set.

Import with `from demo_helpers import ...` (pytest's `pythonpath` holds tests/)."""

from __future__ import annotations

import numpy as np

from boneflow.demo.bones import bone_images
from boneflow.intake.layout import CLASSES
from boneflow.splits.packed import InMemorySplits, SplitArrays


def make_packed(
    *,
    size: int = 48,
    n_train: int = 256,
    n_val: int = 64,
    n_test: int = 64,
    seed: int = 0,
    fractured_share: float = 0.5,
) -> InMemorySplits:
    """train/val/test/test_clean splits (test_clean = the first half of test)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        labels = (rng.random(n) < fractured_share).astype(np.int64)
        images = bone_images(labels, size, rng)
        paths = [f"{name}/{CLASSES[label]}/{i:05d}.png" for i, label in enumerate(labels)]
        splits[name] = SplitArrays(images, labels, paths)
    test, half = splits["test"], n_test // 2
    splits["test_clean"] = SplitArrays(test.images[:half], test.labels[:half], test.paths[:half])
    return InMemorySplits(splits, size)


def planted_groups(planted: dict) -> list[set[str]]:
    """Ground-truth duplicate groups of a demo set: every planted copy (near copies across splits
    and the Kaggle-style duplicates) joined with what it was made from; groups of two or more."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = [(c["original"], c["copy"]) for c in planted["copies"]]
    edges += [(d["of"], d["copy"]) for d in planted.get("duplicates", [])]
    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[str, set[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), set()).add(x)
    return sorted((g for g in groups.values() if len(g) > 1), key=min)
