"""The evaluate stage's core: a model's Scores on a run's packed splits, each model at its own
operating point (the candidate's chosen on validation here, the champion's from its model.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from boneflow.contracts import Predictions, Scores
from boneflow.evaluate.calibration import OperatingPoint, fit_operating_point
from boneflow.evaluate.groups import split_groups, with_group_interval
from boneflow.evaluate.predict import SplitScores, split_report
from boneflow.store.keys import run_key


def predictions(scores: SplitScores, point: OperatingPoint) -> Predictions:
    """What the gate pairs two models on and the ROC is drawn from."""
    return Predictions(
        paths=list(scores.paths),
        labels=scores.labels.tolist(),
        predicted=point.predict(scores.margins).tolist(),
        probability=[round(float(p), 6) for p in point.probability(scores.margins)],
    )


def _scores(run_id: str, split_scores: dict[str, SplitScores], point: OperatingPoint, packed, **extra) -> Scores:
    seen = {name: predictions(s, point) for name, s in split_scores.items()}
    splits = {
        name: with_group_interval(
            split_report(s, point),
            np.asarray(seen[name].predicted) == np.asarray(seen[name].labels),
            split_groups(packed, name),
        )
        for name, s in split_scores.items()
    }
    return Scores(run_id=run_id, splits=splits, predictions=seen, **extra)


def data_context(packed) -> dict:
    """How the packed splits were made: the manifest's `split_policy` and the leakage report's
    `contamination` (None in packs made before them)."""
    leakage_path = Path(packed.dir) / "leakage_report.json"
    leakage = json.loads(leakage_path.read_text()) if leakage_path.is_file() else {}
    return {"split_policy": packed.manifest.get("split_policy"), "contamination": leakage.get("contamination")}


def score_candidate(model, packed, *, run_id: str, image_size: int, min_recall: float) -> tuple[Scores, OperatingPoint]:
    """The candidate on every evaluation split, at the operating point fitted on validation
    (temperature, then the threshold that keeps fractured recall >= min_recall)."""
    from boneflow.evaluate.predict import score_splits

    split_scores = score_splits(model, packed, image_size=image_size)
    point = fit_operating_point(split_scores["val"].labels, split_scores["val"].margins, min_recall=min_recall)
    scores = _scores(run_id, split_scores, point, packed, operating_point=point.to_meta(), **data_context(packed))
    return scores, point


def score_champion(model, meta: dict, packed, dataset_root: Path, *, run_id: str) -> Scores:
    """The champion re-scored on this run's splits the way it is served: at its own pack size
    and crop (the same images decoded again when the sizes differ) and its own operating point
    (model.json threshold and temperature; 0.5 and 1 for champions from before calibration)."""
    from boneflow.evaluate.rescore import score_with_own_preprocessing

    point = OperatingPoint.from_meta(meta, where=run_key(run_id, "model.json"))
    return _scores(run_id, score_with_own_preprocessing(model, meta, packed, dataset_root), point, packed)
