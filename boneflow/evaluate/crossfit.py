"""Cross-fitted evaluation: every radiograph judged out of fold, each fold at the operating point
fitted on the other folds' OOF predictions (so none read its own labels), the published one
(model.json) on all of them (README, "Cross-fitting")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from boneflow.contracts import Scores
from boneflow.evaluate.calibration import OperatingPoint, fit_operating_point, sigmoid
from boneflow.evaluate.predict import SplitScores, predict_margins, report_from_probabilities
from boneflow.evaluate.scores import _scores, data_context, split_groups
from boneflow.evaluate.scores import predictions as split_predictions  # local names `predictions` hold its results
from boneflow.splits.folds import read_pool


def crossfitted_points(scores: SplitScores, fold: np.ndarray, *, target_recall: float) -> dict[int, OperatingPoint]:
    """{fold: the operating point fitted on every other fold's OOF rows}."""
    points = {}
    groups = np.asarray(scores.groups if scores.groups is not None else scores.paths, dtype=object)
    for f in sorted(set(fold.tolist())):
        other = fold != f
        points[int(f)] = fit_operating_point(
            scores.labels[other], scores.margins[other], target_recall=target_recall, groups=list(groups[other])
        )
    return points


def _at_fold_points(scores: SplitScores, fold: np.ndarray, points: dict[int, OperatingPoint]):
    """Each file's calibrated probability and deciding threshold, from its own fold's point."""
    probs = np.empty(len(scores.labels))
    thresholds = np.empty(len(scores.labels))
    for f, point in points.items():
        rows = fold == f
        probs[rows] = point.probability(scores.margins[rows])
        thresholds[rows] = point.threshold
    return probs, thresholds


def oof_report(
    scores: SplitScores, fold: np.ndarray, points: dict[int, OperatingPoint], published: OperatingPoint
) -> dict:
    """The OOF split's metrics by radiograph: each file calibrated and decided by its own fold's
    cross-fitted point. `threshold` and `temperature` are the published ones; the per-fold
    points are listed under `crossfit`."""
    probs, thresholds = _at_fold_points(scores, fold, points)
    metrics = report_from_probabilities(scores, probs, thresholds, sigmoid(scores.margins))
    metrics["threshold"] = published.threshold
    metrics["temperature"] = published.temperature
    metrics["crossfit"] = {
        "folds": len(points),
        "by_fold": {
            str(f): {"threshold": p.threshold, "temperature": p.temperature, "files": int((fold == f).sum())}
            for f, p in points.items()
        },
        "note": "each fold's predictions calibrated and decided at the point fitted on the other folds",
    }
    return metrics


def ensemble_margin(member_margins: np.ndarray, temperature: float) -> np.ndarray:
    """The fold ensemble as one margin per image: T * logit(mean_j sigmoid(m_j / T)), so that
    the operating point's sigmoid(m / T) gives back the members' mean calibrated probability
    (what serving shows)."""
    mean = sigmoid(np.asarray(member_margins, dtype=np.float64) / temperature).mean(axis=0)
    mean = np.clip(mean, 1e-12, 1 - 1e-12)
    return temperature * np.log(mean / (1 - mean))


def oof_predictions(scores: SplitScores, fold: np.ndarray, points: dict[int, OperatingPoint], published):
    """Predictions (the stage contract) of the OOF split: each file at its fold's point."""
    probs, thresholds = _at_fold_points(scores, fold, points)
    return split_predictions(scores, published, probs, thresholds, fold)


def score_crossfit(members: dict, packed, *, run_id: str, image_size: int, target_recall: float):
    """(Scores, published OperatingPoint) of a cross-fitted run. `members`: {fold: model}, the
    model that never saw that fold. Splits: `oof` (every pool radiograph, out of fold, the one the
    gate judges) and `official_test` scored by the fold ensemble at the published point (it saw
    copies of most of it: the contaminated figure the report sets beside the honest one)."""
    pool = read_pool(packed)
    margins = np.zeros(len(pool.labels))
    for f in range(pool.folds):
        rows = np.flatnonzero(pool.fold == f)
        if len(rows):
            margins[rows] = predict_margins(members[f], pool.images[rows], image_size=image_size)
    scores = SplitScores(pool.labels, margins, pool.paths, pool.groups)
    points = crossfitted_points(scores, pool.fold, target_recall=target_recall)
    fitted = fit_operating_point(pool.labels, margins, target_recall=target_recall, groups=pool.groups)
    published = replace(fitted, details={**fitted.details, "fitted_on": "oof", "folds": pool.folds})
    splits = {"oof": oof_report(scores, pool.fold, points, published)}
    predictions = {"oof": oof_predictions(scores, pool.fold, points, published)}
    if "official_test" in packed.split_names():
        split = packed.split("official_test")
        by_member = np.stack([predict_margins(m, split.images, image_size=image_size) for m in members.values()])
        official = SplitScores(
            np.asarray(split.labels, dtype=np.int64),
            ensemble_margin(by_member, published.temperature),
            list(split.paths),
            split_groups(packed, "official_test"),
        )
        ensemble = _scores(run_id, {"official_test": official}, published)
        splits.update(ensemble.splits)
        predictions.update(ensemble.predictions)
    extra = {"operating_point": published.to_meta(), **data_context(packed)}
    return Scores(run_id=run_id, splits=splits, predictions=predictions, **extra), published


def champion_oof_scores(champion_run_id: str, predictions) -> object:
    """The champion's side of a cross-fitted comparison: its own published OOF predictions (its
    predictions.csv), never a re-score (its fold ensemble saw every radiograph). Empty splits
    when it has none: then no fair comparison exists and the gate says so."""
    if predictions is None:
        return Scores(run_id=champion_run_id, splits={}, predictions={})
    scores = SplitScores(
        np.asarray(predictions.labels, dtype=np.int64),
        np.zeros(len(predictions.labels)),
        list(predictions.paths),
        list(predictions.groups),
    )
    probs = np.asarray(predictions.probability, dtype=np.float64)
    report = report_from_probabilities(scores, probs, np.asarray(predictions.file_thresholds()), probs)
    report["threshold"] = predictions.threshold
    report["crossfit"] = {"folds": len(set(predictions.folds)), "note": "the champion run's published OOF predictions"}
    return Scores(run_id=champion_run_id, splits={"oof": report}, predictions={"oof": predictions})
