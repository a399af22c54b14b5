"""split_metrics against scikit-learn and hand-computed values on fixed inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from boneflow.evaluate.metrics import expected_calibration_error, split_metrics, wilson_interval

LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1])
PROBS = np.array([0.1, 0.2, 0.7, 0.3, 0.05, 0.55, 0.9, 0.8, 0.45, 0.6, 0.99, 0.3, 0.85, 0.7, 0.4, 0.65])


def test_matches_scikit_learn_on_fixed_inputs():
    m = split_metrics(LABELS, PROBS)
    pred = (PROBS >= 0.5).astype(int)
    assert m["n"] == 16
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(LABELS, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(LABELS, pred))
    assert m["recall_fractured"] == pytest.approx(skm.recall_score(LABELS, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(LABELS, pred, pos_label=0))
    assert m["precision_fractured"] == pytest.approx(skm.precision_score(LABELS, pred))
    assert m["f1_fractured"] == pytest.approx(skm.f1_score(LABELS, pred))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(LABELS, PROBS))
    assert m["confusion"] == skm.confusion_matrix(LABELS, pred).tolist()
    # By hand: tn=5 fp=2 fn=2 tp=7.
    assert m["confusion"] == [[5, 2], [2, 7]]
    assert m["accuracy"] == pytest.approx(12 / 16)
    assert m["recall_fractured"] == pytest.approx(7 / 9) and m["specificity"] == pytest.approx(5 / 7)


def test_wilson_interval_known_values():
    # 12/16 with z=1.96: centre 0.7014, half-width 0.1884 (Wilson 1927 formula by hand).
    lo, hi = wilson_interval(12, 16)
    assert lo == pytest.approx(0.5050, abs=1e-3) and hi == pytest.approx(0.8980, abs=1e-3)
    assert split_metrics(LABELS, PROBS)["accuracy_ci95"] == [lo, hi]
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == [0.0, 1.0]


def test_ece_by_hand():
    # Two bins used: confidence 0.9 (4 samples, 3 right) and 0.6 (2 samples, 2 right).
    labels = np.array([1, 1, 1, 0, 1, 0])
    probs = np.array([0.9, 0.9, 0.9, 0.9, 0.6, 0.4])
    expected = (4 / 6) * abs(0.75 - 0.9) + (2 / 6) * abs(1.0 - 0.6)
    assert expected_calibration_error(labels, probs) == pytest.approx(expected)
    perfect = expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0]))
    assert perfect == pytest.approx(0.0)


def test_one_class_split_leaves_undefined_metrics_none():
    m = split_metrics(np.ones(5, dtype=int), np.array([0.9, 0.8, 0.2, 0.7, 0.6]))
    assert m["auroc"] is None and m["specificity"] is None and m["balanced_accuracy"] is None
    assert m["recall_fractured"] == pytest.approx(0.8)
    assert m["confusion"] == [[0, 0], [1, 4]]


def test_empty_split():
    m = split_metrics([], [])
    assert m["n"] == 0 and m["accuracy"] is None and m["confusion"] == [[0, 0], [0, 0]]


def test_threshold_is_applied():
    m = split_metrics(LABELS, PROBS, threshold=0.75)
    pred = (PROBS >= 0.75).astype(int)
    assert m["confusion"] == skm.confusion_matrix(LABELS, pred).tolist()


# Values of the hand-written Wilson formula (z = 1.96) before it was replaced by scipy's binomtest:
# the interval in metrics.json must not move.
WILSON_BEFORE_SCIPY = [
    ((0, 10), [0.0, 0.2775327998628892]),
    ((10, 10), [0.7224672001371107, 0.9999999999999999]),
    ((7, 20), [0.18119182410108206, 0.5671457233147638]),
    ((12, 16), [0.5050168346449122, 0.8981793250878696]),
    ((1, 1), [0.20654931437723745, 1.0]),
    ((150, 321), [0.41341875542489764, 0.5219343239626949]),
    ((0, 0), [0.0, 1.0]),
]


@pytest.mark.parametrize("counts,expected", WILSON_BEFORE_SCIPY)
def test_wilson_interval_unchanged(counts, expected):
    interval = wilson_interval(*counts)
    assert interval == pytest.approx(expected, abs=1e-9, rel=0)
    assert all(type(x) is float for x in interval) and 0.0 <= interval[0] <= interval[1] <= 1.0


def test_wilson_interval_is_the_wilson_formula():
    # z = 1.96 (95 %), n = 20, p = 0.35: the Wilson formula by hand
    z = 1.959963984540054
    lo, hi = wilson_interval(7, 20)
    denominator = 1 + z**2 / 20
    centre, half = (0.35 + z**2 / 40) / denominator, z * (0.2275 / 20 + z**2 / 1600) ** 0.5 / denominator
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
