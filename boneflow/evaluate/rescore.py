"""The same evaluation images at another stored size, for re-scoring a champion that was
trained with other preprocessing than this run (a fair comparison scores each model the way
it is served: its own pack size and crop, on the same images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from boneflow.intake.decode import load_xray
from boneflow.splits.packed import InMemorySplits, PackedSplits, SplitArrays


def repack_for_evaluation(
    packed: PackedSplits, dataset_root: Path, size: int, splits: tuple[str, ...] | None = None
) -> InMemorySplits:
    """`packed`'s evaluation splits (same images, labels and order) decoded from `dataset_root`
    with `load_xray` at `size` -- the decode path of packing and serving."""
    from boneflow.evaluate.predict import evaluation_splits

    out = {}
    for name in splits or evaluation_splits(packed):
        split = packed.split(name)
        images = np.zeros((len(split.paths), size, size), dtype=np.uint8)
        for row, rel in enumerate(split.paths):
            images[row] = load_xray(Path(dataset_root) / rel, size)
        out[name] = SplitArrays(images=images, labels=np.asarray(split.labels), paths=list(split.paths))
    return InMemorySplits(out, size, tuple(packed.classes))


def score_with_own_preprocessing(
    model, meta: dict, packed: PackedSplits, dataset_root: Path, *, splits: tuple[str, ...] | None = None
) -> dict:
    """{split: SplitScores} of a saved model on `packed`'s evaluation images (default: all it
    holds), preprocessed the way its model.json says (pack size and crop). Uses the packed
    arrays as they are when the sizes match, else decodes the same images again at the
    model's pack size."""
    from boneflow.evaluate.predict import evaluation_splits, score_splits

    splits = splits or evaluation_splits(packed)
    pack_size, image_size = meta["preprocessing"]["pack_size"], meta["preprocessing"]["image_size"]
    data: PackedSplits = packed
    if pack_size != packed.size:
        data = repack_for_evaluation(packed, dataset_root, pack_size, splits)
    return score_splits(model, data, image_size=image_size, splits=splits)
