"""The per-image thumbnail validation keeps for the duplicate search (duplicates/grouping.py):
made from the same decode as the perceptual hashes, so each file is decoded once."""

from __future__ import annotations

import numpy as np

THUMB_SIDE = 64  # squashed (not padded) thumbnail side kept per image by validation


def group_thumbnail(grey) -> np.ndarray:
    """uint8 [THUMB_SIDE, THUMB_SIDE]: the decoded greyscale image squashed to a square (the
    dataset's copies were squashed, so squashing, not padding, makes them comparable)."""
    from PIL import Image

    small = grey.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)
