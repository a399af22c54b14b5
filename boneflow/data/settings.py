"""Data preparation settings and the constants the data stages share, declared once.

Standard library only: the training core (GPU box), the app and `boneflow --help` import it
without numpy or PIL. RetrainConfig takes its data fields' defaults from `DataSettings`, and the
core's functions (validate, leakage audit, grouping, split planning) default to the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SplitPolicy = Literal["auto", "official", "regroup"]

# Of the 256-bit phash (imagehash hash_size=16). On the demo sets (seeds 0 and 1, 2,500 images)
# copies re-encoded at JPEG q30-60, resized 0.35-0.5x, mirrored, rotated 90 degrees or
# contrast-changed stayed <= 16 (<= 22 all combined) and no distinct pair came closer than 30;
# see scripts/measure_leakage.py.
LEAK_MAX_DISTANCE = 26

MIB = 1024 * 1024


def pack_size_for(image_size: int) -> int:
    """Stored side of packed images for a crop of `image_size`: 8/7 of it (256 for 224), like
    ImageNet's resize-then-crop, so random crops and small rotations stay inside the image."""
    return int(round(image_size * 8 / 7))


@dataclass(frozen=True)
class DataSettings:
    min_side: int = 64  # shorter side below this many pixels: excluded as too small
    leak_max_distance: int = LEAK_MAX_DISTANCE  # phash Hamming distance (of 256) still a copy
    split_policy: SplitPolicy = "auto"  # official | regroup | auto (see data/splits.py)
    workers: int = 0  # decoding processes; 0 = one per CPU core
    max_image_mb: int = 64  # X-ray exports are a few MB; 7000x7000 16-bit pixels are 98 MB raw
    folds: int = 5  # cross-fitting folds under regroup (1: the single 70/10/20 split); data/splits.py

    @property
    def max_bytes(self) -> int:
        """`max_image_mb` in bytes: the size limit validation applies to each file."""
        return self.max_image_mb * MIB
