"""Binary metrics for one split. Positive class = label 1 = `fractured`.

scikit-learn computes what it has, scipy the Wilson interval; the ECE and the AUROC's bootstrap
interval are written here. Headline figures count radiographs (evaluate/radiographs.py), which
are independent, so a binomial interval is honest. Values are plain Python numbers so the dict
goes straight into metrics.json.
"""

from __future__ import annotations

import numpy as np

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
# The per-file figures kept beside the headline (radiograph) ones, under a split's `by_file`.
FILE_FIELDS = ("n", "accuracy", "accuracy_ci95", "recall_fractured", "specificity", "auroc", "ece", "confusion")
AUROC_RESAMPLES = 2000  # percentile ends move by < 0.01 between bootstrap seeds at ~40 radiographs


def wilson_interval(successes: int, n: int) -> list[float]:
    """95 % Wilson score interval for a binomial proportion; [0, 1] when n == 0."""
    if n == 0:
        return [0.0, 1.0]
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [max(0.0, float(ci.low)), min(1.0, float(ci.high))]


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


def split_metrics(labels, prob_fractured, *, threshold: float = 0.5, predicted=None) -> dict:
    """One split's figures as metrics.json holds them (accuracy, balanced accuracy, fractured
    recall, precision and F1, specificity, AUROC, with their intervals). None where undefined (no
    positives, one class only for AUROC). `predicted` replaces `prob >= threshold` when the decisions were
    made at more than one threshold (cross-fitting: each fold at its own)."""
    from sklearn import metrics as skm

    y = np.asarray(labels, dtype=np.int64)
    prob = np.asarray(prob_fractured, dtype=np.float64)
    if y.shape != prob.shape:
        raise ValueError(f"labels {y.shape} and probabilities {prob.shape} differ in shape")
    n = int(len(y))
    if n == 0:
        undefined = [k for k in THRESHOLD_FIELDS + ("auroc",) if k not in ("accuracy_ci95", "confusion")]
        return {
            "n": 0,
            **{k: None for k in undefined},
            "accuracy_ci95": [0.0, 1.0],
            "ece": None,
            "confusion": [[0, 0], [0, 0]],
            "threshold": threshold,
        }
    pred = (prob >= threshold).astype(np.int64) if predicted is None else np.asarray(predicted, dtype=np.int64)
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    both_classes = len(np.unique(y)) == 2

    def defined(compute, when: bool):
        # Computed only when defined: sklearn warns (and returns 0) otherwise.
        return float(compute()) if when else None

    return {
        "n": n,
        "accuracy": float(skm.accuracy_score(y, pred)),
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


def auroc_bootstrap_interval(labels, prob_fractured) -> list[float] | None:
    """95 % percentile interval of the AUROC over AUROC_RESAMPLES resamples (seed 0), positives
    and negatives resampled separately (each resample keeps both classes); None with one class.

    A resample is a weight per item (how often it was drawn), so every resample's AUROC comes
    from one matrix product over the distinct scores: the weighted Mann-Whitney count, ties
    counted one half."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(prob_fractured, dtype=np.float64)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0:
        return None
    rng = np.random.default_rng(0)
    scores, index = np.unique(p, return_inverse=True)
    onehot = np.zeros((len(p), len(scores)))
    onehot[np.arange(len(p)), index] = 1.0
    w_pos = rng.multinomial(len(pos), np.full(len(pos), 1 / len(pos)), size=AUROC_RESAMPLES) @ onehot[pos]
    w_neg = rng.multinomial(len(neg), np.full(len(neg), 1 / len(neg)), size=AUROC_RESAMPLES) @ onehot[neg]
    below = np.cumsum(w_neg, axis=1) - w_neg  # negatives scored strictly lower than each score
    auc = (w_pos * (below + 0.5 * w_neg)).sum(axis=1) / (len(pos) * len(neg))
    lo, hi = np.percentile(auc, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def headline_intervals(labels, prob_fractured, *, predicted) -> dict:
    """95 % intervals of recall, specificity (Wilson) of the decisions `predicted` and of the
    AUROC (bootstrap); accuracy's is in split_metrics."""
    y = np.asarray(labels, dtype=np.int64)
    called = np.asarray(predicted) == 1
    tp, positives = int((called & (y == 1)).sum()), int((y == 1).sum())
    tn, negatives = int((~called & (y == 0)).sum()), int((y == 0).sum())
    return {
        "recall_fractured_ci95": wilson_interval(tp, positives) if positives else None,
        "specificity_ci95": wilson_interval(tn, negatives) if negatives else None,
        "auroc_ci95": auroc_bootstrap_interval(y, prob_fractured),
    }
