"""Example images for the app: tiny synthetic X-ray-like pictures drawn on the fly.

No patient data ships with boneflow. Each example is a bright "bone" (a rounded bar) on a dark,
noisy background; the `fractured` ones have a dark oblique gap across the bar. They show how the
app behaves; they are not radiographs and the model's answer on them means nothing clinically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_example(*, fractured: bool, size: int = 256, seed: int = 0) -> np.ndarray:
    """uint8 [size, size] greyscale picture of a bone, with a break when `fractured`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(-0.5, 0.5)
    # distance from a tilted line through the centre: the bone's axis
    across = (xx - 0.5) * np.cos(angle) - (yy - 0.5) * np.sin(angle)
    along = (xx - 0.5) * np.sin(angle) + (yy - 0.5) * np.cos(angle)
    bone = np.clip(1 - (np.abs(across) / 0.09) ** 4, 0, 1) * (np.abs(along) < 0.42)
    img = 40 + 170 * bone + rng.normal(0, 8, (size, size))
    if fractured:
        offset = rng.uniform(-0.15, 0.15)
        gap = np.abs(along - offset - 0.6 * across) < 0.012
        img[gap & (bone > 0.2)] = 55
    return np.clip(img, 0, 255).astype(np.uint8)


def write_examples(folder: Path, *, size: int = 256) -> list[Path]:
    """Write two fractured and two intact examples as PNG; return their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fractured in enumerate((True, False, True, False)):
        path = folder / f"example-{i + 1}-{'fractured' if fractured else 'intact'}.png"
        Image.fromarray(draw_example(fractured=fractured, size=size, seed=i)).save(path)
        paths.append(path)
    return paths
