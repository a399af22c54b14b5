"""Operating threshold and temperature: chosen on validation, stored in model.json, read back
with defaults for older files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boneflow.evaluate.calibration import (
    CalibrationError,
    OperatingPoint,
    fit_operating_point,
    fit_temperature,
    radiograph_nll,
    sigmoid,
)
from boneflow.evaluate.metrics import expected_calibration_error
from boneflow.evaluate.predict import SplitScores, split_report
from boneflow.train.package import complete_model_json


def _overconfident(n=4000, scale=4.0, seed=0):
    """Labels drawn from sigmoid(true margin); the 'model' reports scale x the true margin."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 1.5, n)
    labels = (rng.random(n) < sigmoid(true)).astype(np.int64)
    return labels, scale * true


def _own_groups(labels) -> list[str]:
    """Every file its own radiograph: the radiograph NLL is then the per-file NLL."""
    return [str(i) for i in range(len(labels))]


def test_temperature_undoes_overconfidence_and_lowers_nll_and_ece():
    labels, margins = _overconfident()
    groups = _own_groups(labels)
    t = fit_temperature(labels, margins, groups)
    assert 3.4 < t < 4.6  # the truth is 4
    assert radiograph_nll(labels, margins, groups, t) < radiograph_nll(labels, margins, groups) - 0.05
    before = expected_calibration_error(labels, sigmoid(margins))
    after = expected_calibration_error(labels, sigmoid(margins / t))
    assert before > 0.08 and after < before / 2


def test_temperature_is_the_nll_minimum():
    labels, margins = _overconfident(n=500, scale=0.5, seed=1)  # underconfident: T < 1
    groups = _own_groups(labels)
    t = fit_temperature(labels, margins, groups)
    assert t < 1
    for other in (t * 0.9, t * 1.1):
        assert radiograph_nll(labels, margins, groups, t) <= radiograph_nll(labels, margins, groups, other)


@pytest.mark.parametrize("min_recall", [0.9, 0.95, 0.8, 1.0, 0.0])
def test_threshold_meets_the_recall_target_on_validation_and_is_the_highest(min_recall):
    labels, margins = _overconfident(n=600, scale=2.0, seed=2)
    point = fit_operating_point(labels, margins, target_recall=min_recall)
    probs = point.probability(margins)
    recall = (probs[labels == 1] >= point.threshold).mean()
    assert recall >= min_recall and point.details["val_recall"] == pytest.approx(recall)
    # the highest such threshold: exactly the k best-scored fractured images are called fractured
    positives = int((labels == 1).sum())
    assert (probs[labels == 1] >= point.threshold).sum() == max(1, int(np.ceil(round(min_recall * positives, 9))))


def test_recall_target_of_nine_tenths_on_ten_positives_keeps_nine():
    labels = np.array([1] * 10 + [0] * 10)
    margins = np.concatenate([np.arange(10, 0, -1), np.arange(-10, 0)]).astype(float)
    point = fit_operating_point(labels, margins, target_recall=0.9)
    assert (point.probability(margins)[:10] >= point.threshold).sum() == 9  # not 10: 0.9 * 10 must not round up


def test_one_class_validation_keeps_the_defaults_and_says_why():
    point = fit_operating_point(np.zeros(5, dtype=int), np.linspace(-2, 2, 5), target_recall=0.9)
    assert (point.threshold, point.temperature) == (0.5, 1.0)
    assert "no fractured radiograph" in point.details["note"]


def test_model_json_round_trip_and_old_files_default(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"architecture": "resnet18-1ch", "classes": ["not fractured", "fractured"]}))
    assert OperatingPoint.from_meta(json.loads(path.read_text())) == OperatingPoint(0.5, 1.0)
    complete_model_json(
        tmp_path, operating_point=OperatingPoint(threshold=0.31, temperature=1.7, details={"n": 4}).to_meta()
    )
    meta = json.loads(path.read_text())
    assert (meta["threshold"], meta["temperature"], meta["calibration"], meta["architecture"]) == (
        0.31,
        1.7,
        {"n": 4},
        "resnet18-1ch",
    )
    assert OperatingPoint.from_meta(meta).threshold == 0.31


@pytest.mark.parametrize("bad", [{"threshold": 1.5}, {"temperature": 0}, {"temperature": "hot"}])
def test_unusable_stored_values_name_the_file(bad):
    with pytest.raises(CalibrationError, match="run-x/model.json: unusable operating point"):
        OperatingPoint.from_meta(bad, where="run-x/model.json")


def test_split_report_at_the_operating_threshold_and_at_half():
    labels = np.array([1, 1, 1, 0, 0, 0])
    margins = np.array([3.0, 0.2, -0.4, -0.1, -2.0, -3.0])
    point = OperatingPoint(threshold=sigmoid(-0.5 / 2.0), temperature=2.0)
    m = split_report(SplitScores(labels, margins, list("abcdef")), point)
    assert m["threshold"] == point.threshold and m["temperature"] == 2.0
    assert m["recall_fractured"] == 1.0 and m["specificity"] == pytest.approx(2 / 3)
    assert m["at_0.5"]["recall_fractured"] == pytest.approx(2 / 3) and m["at_0.5"]["specificity"] == 1.0
    assert m["ece"] != m["ece_uncalibrated"] and m["auroc"] == pytest.approx(8 / 9)
