"""The evaluate stage's core: a model's Scores on a run's packed splits, by radiograph, at its own
operating point (the candidate's chosen on validation, the champion's from its model.json). The
champion is re-scored, never read from its stored metrics (older ones counted files), and the
way it is served: its own pack size and crop, on the same images decoded again if need be.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from boneflow.contracts import Predictions, Scores
from boneflow.evaluate.calibration import OperatingPoint, fit_operating_point
from boneflow.evaluate.predict import SplitScores, evaluation_splits, score_splits, split_report
from boneflow.evaluate.radiographs import group_of_each_file
from boneflow.intake.decode import load_xray
from boneflow.splits.packed import InMemorySplits, PackedSplits, SplitArrays
from boneflow.store.keys import run_key


def predictions(scores: SplitScores, point: OperatingPoint, probs=None, thresholds=None, folds=None) -> Predictions:
    """What the gate pairs two models on (by radiograph), the ROC is drawn from and
    predictions.csv lists: each file at `point`, or, cross-fitted, at its own fold's point
    (`probs` and `thresholds` per file, and the `folds` they were predicted out of)."""
    probs = point.probability(scores.margins) if probs is None else probs
    return Predictions(
        paths=list(scores.paths),
        labels=scores.labels.tolist(),
        predicted=(probs >= (point.threshold if thresholds is None else thresholds)).astype(int).tolist(),
        probability=[round(float(p), 6) for p in probs],
        groups=group_of_each_file(scores.paths, scores.groups),
        threshold=point.threshold,
        thresholds=[] if thresholds is None else [float(t) for t in thresholds],
        folds=[] if folds is None else [int(f) for f in folds],
    )


def split_groups(packed, split: str) -> list[str] | None:
    """Each file's duplicate group in `split`, from the pack's splits.json (splits/plan.py); None
    when the pack has no splits.json (in-memory splits, packs made before it) or a file is not
    listed."""
    folder = getattr(packed, "dir", None)
    if folder is None or not (Path(folder) / "splits.json").is_file():
        return None
    listed = json.loads((Path(folder) / "splits.json").read_text()).get("files", {})
    paths = packed.split(split).paths
    if not all(p in listed for p in paths):
        return None
    return [str(listed[p].get("group") or p) for p in paths]


def with_groups(split_scores: dict[str, SplitScores], packed) -> dict[str, SplitScores]:
    """The same scores with each file's duplicate group from the pack's splits.json."""
    return {name: replace(s, groups=split_groups(packed, name)) for name, s in split_scores.items()}


def _scores(run_id: str, split_scores: dict[str, SplitScores], point: OperatingPoint, **extra) -> Scores:
    seen = {name: predictions(s, point) for name, s in split_scores.items()}
    splits = {name: split_report(s, point) for name, s in split_scores.items()}
    return Scores(run_id=run_id, splits=splits, predictions=seen, **extra)


def data_context(packed) -> dict:
    """How the packed splits were made: the manifest's `split_policy` and the leakage report's
    `contamination` (None in packs made before them)."""
    leakage_path = Path(packed.dir) / "leakage_report.json"
    leakage = json.loads(leakage_path.read_text()) if leakage_path.is_file() else {}
    return {"split_policy": packed.manifest.get("split_policy"), "contamination": leakage.get("contamination")}


def score_candidate(
    model, packed, *, run_id: str, image_size: int, target_recall: float
) -> tuple[Scores, OperatingPoint]:
    """The candidate on every evaluation split, at the operating point fitted on validation."""
    split_scores = with_groups(score_splits(model, packed, image_size=image_size), packed)
    val = split_scores["val"]
    point = fit_operating_point(val.labels, val.margins, target_recall=target_recall, groups=val.groups)
    scores = _scores(run_id, split_scores, point, operating_point=point.to_meta(), **data_context(packed))
    return scores, point


def score_champion(model, meta: dict, packed, dataset_root: Path, *, run_id: str) -> Scores:
    """The champion re-scored on this run's splits the way it is served, at its own
    preprocessing and operating point (0.5 and 1 for champions from before calibration)."""
    point = OperatingPoint.from_meta(meta, where=run_key(run_id, "model.json"))
    return _scores(run_id, with_groups(score_with_own_preprocessing(model, meta, packed, dataset_root), packed), point)


def repack_for_evaluation(
    packed: PackedSplits, dataset_root: Path, size: int, splits: tuple[str, ...]
) -> InMemorySplits:
    """`packed`'s `splits` (same images, labels and order) decoded from `dataset_root` with
    `load_xray` at `size` -- the decode path of packing and serving."""
    out = {}
    for name in splits:
        split = packed.split(name)
        images = np.zeros((len(split.paths), size, size), dtype=np.uint8)
        for row, rel in enumerate(split.paths):
            images[row] = load_xray(Path(dataset_root) / rel, size)
        out[name] = SplitArrays(images=images, labels=np.asarray(split.labels), paths=list(split.paths))
    return InMemorySplits(out, size, tuple(packed.classes))


def score_with_own_preprocessing(model, meta: dict, packed: PackedSplits, dataset_root: Path) -> dict:
    """{split: SplitScores} of a saved model on `packed`'s evaluation images at its model.json's
    pack size and crop (the packed arrays when the pack size matches, else decoded again)."""
    splits = evaluation_splits(packed)
    pack_size, image_size = meta["preprocessing"]["pack_size"], meta["preprocessing"]["image_size"]
    data: PackedSplits = packed
    if pack_size != packed.size:
        data = repack_for_evaluation(packed, dataset_root, pack_size, splits)
    return score_splits(model, data, image_size=image_size, splits=splits)
