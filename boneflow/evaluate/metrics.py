"""Binary metrics for one split. Positive class = label 1 = `fractured`.

scikit-learn computes everything it has (accuracy, balanced accuracy, precision, recall, F1,
AUROC, confusion matrix); the Wilson interval and the ECE are written here (sklearn has
neither). All values are plain Python numbers so the dict goes straight into metrics.json.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
# The metrics that change with the decision threshold (AUROC and ECE do not).
THRESHOLD_FIELDS = (
    "accuracy",
    "accuracy_ci95",
    "balanced_accuracy",
    "recall_fractured",
    "specificity",
    "precision_fractured",
    "f1_fractured",
    "confusion",
)


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval for a binomial proportion; [0, 1] when n == 0."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def expected_calibration_error(labels, prob_fractured, *, bins: int = 15) -> float:
    """Top-label ECE: confidence = max(p, 1-p), equal-width bins over [0, 1], weighted by count."""
    labels = np.asarray(labels, dtype=np.int64)
    prob = np.asarray(prob_fractured, dtype=np.float64)
    if len(labels) == 0:
        return 0.0
    predicted = (prob >= 0.5).astype(np.int64)
    confidence = np.where(predicted == 1, prob, 1 - prob)
    correct = (predicted == labels).astype(np.float64)
    # Bin i holds (i/bins, (i+1)/bins]; confidence 0 goes to the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def split_metrics(labels, prob_fractured, *, threshold: float = 0.5) -> dict:
    """DESIGN.md's per-split metrics plus balanced_accuracy. None where undefined (no positives,
    one class only for AUROC)."""
    from sklearn import metrics as skm

    y = np.asarray(labels, dtype=np.int64)
    prob = np.asarray(prob_fractured, dtype=np.float64)
    if y.shape != prob.shape:
        raise ValueError(f"labels {y.shape} and probabilities {prob.shape} differ in shape")
    n = int(len(y))
    if n == 0:
        keys = (
            "accuracy",
            "balanced_accuracy",
            "recall_fractured",
            "specificity",
            "precision_fractured",
            "f1_fractured",
            "auroc",
        )
        return {
            "n": 0,
            **{k: None for k in keys},
            "accuracy_ci95": [0.0, 1.0],
            "ece": None,
            "confusion": [[0, 0], [0, 0]],
            "threshold": threshold,
        }
    pred = (prob >= threshold).astype(np.int64)
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    both_classes = len(np.unique(y)) == 2

    def defined(compute, when: bool):
        # Computed only when defined: sklearn warns (and returns 0) otherwise.
        return float(compute()) if when else None

    accuracy = skm.accuracy_score(y, pred)
    return {
        "n": n,
        "accuracy": float(accuracy),
        "accuracy_ci95": wilson_interval(tn + tp, n),
        "balanced_accuracy": defined(lambda: skm.balanced_accuracy_score(y, pred), both_classes),
        "recall_fractured": defined(lambda: skm.recall_score(y, pred, pos_label=1, zero_division=0), tp + fn > 0),
        "specificity": defined(lambda: skm.recall_score(y, pred, pos_label=0, zero_division=0), tn + fp > 0),
        "precision_fractured": defined(lambda: skm.precision_score(y, pred, pos_label=1, zero_division=0), tp + fp > 0),
        "f1_fractured": defined(lambda: skm.f1_score(y, pred, pos_label=1, zero_division=0), tp + fn > 0),
        "auroc": defined(lambda: skm.roc_auc_score(y, prob), both_classes),
        "ece": expected_calibration_error(y, prob),
        "confusion": [[int(tn), int(fp)], [int(fn), int(tp)]],
        "threshold": threshold,
    }
