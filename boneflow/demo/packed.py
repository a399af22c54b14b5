"""In-memory packed splits (`boneflow.splits.packed.PackedSplits`) with a learnable pattern.

For tests, benchmarks and the GPU script. The images are square pictures from the demo
dataset's drawer (boneflow.demo.bones.bone_images): a fractured bone has a displaced
gap across its shaft, visible after crops, small rotations and flips.
"""

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
