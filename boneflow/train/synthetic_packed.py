"""In-memory packed splits (`boneflow.data.packed_splits.PackedSplits`) with a learnable pattern.

For tests, benchmarks and the GPU script (numpy only). Each image is a dark, noisy field with
a bright "bone" bar at a random angle and position; a `fractured` image has a dark gap across
the bar. Visible after crops, small rotations and flips, so a small network learns it fast.
"""

from __future__ import annotations

import numpy as np

from boneflow.data.layout import CLASSES
from boneflow.data.packed_splits import InMemorySplits, SplitArrays


def bone_images(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(-np.pi / 5, np.pi / 5, n)[:, None, None] + np.pi / 2 * rng.integers(0, 2, n)[:, None, None]
    cx, cy = rng.uniform(-0.08, 0.08, (2, n))[..., None, None]
    # Coordinates along (u) and across (v) the bar.
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    width = rng.uniform(0.07, 0.12, n)[:, None, None]
    bar = (np.abs(v) < width) & (np.abs(u) < 0.42)
    gap_at = rng.uniform(-0.12, 0.12, n)[:, None, None]
    gap = (np.abs(u - gap_at) < 0.035) & (labels[:, None, None] == 1)
    brightness = rng.uniform(150, 230, n)[:, None, None]
    picture = 25 + rng.normal(0, 12, (n, size, size)) + brightness * (bar & ~gap)
    return np.clip(picture, 0, 255).astype(np.uint8)


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
