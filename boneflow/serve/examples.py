"""Example images for the app: synthetic X-ray-like pictures drawn on the fly.

No patient data ships with boneflow. The examples come from the demo dataset's drawer
(boneflow.data.synthetic_bones): a long bone on a dark, noisy background, with a displaced
fracture on the `fractured` ones. They show how the app behaves; they are not radiographs and
the model's answer on them means nothing clinically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from boneflow.data.synthetic_bones import draw_radiograph


def write_examples(folder: Path, *, size: int = 256) -> list[Path]:
    """Write two fractured and two intact `size` x `size` examples as PNG; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fractured in enumerate((True, False, True, False)):
        path = folder / f"example-{i + 1}-{'fractured' if fractured else 'intact'}.png"
        picture = draw_radiograph(np.random.default_rng(i), fractured=fractured, width=size, height=size)
        Image.fromarray(picture).save(path)
        paths.append(path)
    return paths
