"""A model's operating point, chosen on validation by radiograph (README, "Honest evaluation",
item 6): a temperature that makes its probabilities mean what they say, and the decision
threshold on them, as screening tools set a sensitivity and take the specificity that comes
with it. A two-class softmax is a sigmoid of the logit margin m = z_fractured - z_not, so
temperature T gives P(fractured) = sigmoid(m / T); the NLL is convex in 1/T, so a bounded 1-D
search on log T finds its minimum. A model.json without `threshold` and `temperature` means 0.5
and 1.0, the argmax decision of older models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from boneflow.errors import BoneflowError
from boneflow.evaluate.metrics import expected_calibration_error
from boneflow.evaluate.radiographs import by_radiograph, group_of_each_file

DEFAULT_THRESHOLD = 0.5
DEFAULT_TEMPERATURE = 1.0
# Bounds of the temperature search: beyond them a model is either certain of everything or of
# nothing, and a fit that lands there says more about a tiny or separable validation set.
T_MIN, T_MAX = 0.05, 20.0


class CalibrationError(BoneflowError):
    """A stored operating point is unusable (threshold outside [0, 1], temperature <= 0)."""


def sigmoid(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    # exp of a negative number only: no overflow warnings for large margins
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def radiograph_nll(labels, margins, groups, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood over radiographs, each one's probability the mean of its
    files' sigmoid(margin / T) (evaluate/radiographs.py)."""
    rad = by_radiograph(groups, labels, sigmoid(np.asarray(margins, dtype=np.float64) / temperature))
    if len(rad) == 0:
        return 0.0
    p = np.clip(rad.probability, 1e-12, 1 - 1e-12)
    return float(-np.mean(np.where(rad.labels == 1, np.log(p), np.log1p(-p))))


def fit_temperature(labels, margins, groups) -> float:
    """T in [T_MIN, T_MAX] minimising the NLL by radiograph (`groups`: each file's group id)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(labels)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return DEFAULT_TEMPERATURE  # one class: the NLL is minimised at a bound, which means nothing
    m = np.asarray(margins, dtype=np.float64)
    found = minimize_scalar(
        lambda log_t: radiograph_nll(y, m, groups, math.exp(log_t)),
        bounds=(math.log(T_MIN), math.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(math.exp(found.x))


def recall_threshold(labels, probability, *, target_recall: float) -> float | None:
    """The highest threshold on P(fractured) whose recall reaches `target_recall`; None without
    a fractured item. It calls at least the k = max(1, ceil(target_recall * positives)) most
    probable fractured items fractured, and cuts midway between the k-th of them and the next
    lower probability, so rounding noise in a re-computed probability cannot flip an item."""
    y = np.asarray(labels)
    p = np.asarray(probability, dtype=np.float64)
    positives = np.sort(p[y == 1])[::-1]
    if len(positives) == 0:
        return None
    # round first: 0.9 * 10 is 9.000000000000002 in floating point
    k = max(1, math.ceil(round(target_recall * len(positives), 9)))
    cut = float(positives[k - 1])
    below = p[p < cut]
    return (cut + float(below.max())) / 2 if len(below) else cut / 2


@dataclass(frozen=True)
class OperatingPoint:
    """How a model's margins become what the user sees: P = sigmoid(m / temperature), and the
    label `fractured` when P >= threshold."""

    threshold: float = DEFAULT_THRESHOLD
    temperature: float = DEFAULT_TEMPERATURE
    details: dict = field(default_factory=dict)  # how it was chosen (stored as model.json `calibration`)

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:  # NaN too
            raise CalibrationError(f"threshold={self.threshold} must be between 0 and 1.")
        if not self.temperature > 0 or math.isinf(self.temperature):
            raise CalibrationError(f"temperature={self.temperature} must be a positive number.")

    def probability(self, margins) -> np.ndarray:
        return sigmoid(np.asarray(margins, dtype=np.float64) / self.temperature)

    def to_meta(self) -> dict:
        """The model.json keys."""
        return {"threshold": self.threshold, "temperature": self.temperature, "calibration": dict(self.details)}

    @classmethod
    def from_meta(cls, meta: dict, *, where: str = "model.json") -> OperatingPoint:
        """From a model.json dict; the defaults when it predates operating points."""
        try:
            threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
            temperature = float(meta.get("temperature", DEFAULT_TEMPERATURE))
            return cls(threshold=threshold, temperature=temperature, details=dict(meta.get("calibration") or {}))
        except (TypeError, ValueError, CalibrationError) as err:
            raise CalibrationError(
                f"{where}: unusable operating point ({err}). Re-publish the run, or "
                "delete `threshold` and `temperature` to fall back to 0.5 and 1.0."
            ) from None


def fit_operating_point(labels, margins, *, target_recall: float, groups=None) -> OperatingPoint:
    """Temperature and threshold from validation labels and margins, by radiograph (`groups`:
    each file's duplicate group; None: every file its own radiograph)."""
    y = np.asarray(labels, dtype=np.int64)
    m = np.asarray(margins, dtype=np.float64)
    file_groups = group_of_each_file([str(i) for i in range(len(y))], groups)
    temperature = fit_temperature(y, m, file_groups)
    before, after = by_radiograph(file_groups, y, sigmoid(m)), by_radiograph(file_groups, y, sigmoid(m / temperature))
    cut = recall_threshold(after.labels, after.probability, target_recall=target_recall)
    threshold = DEFAULT_THRESHOLD if cut is None else cut
    called = after.predicted(threshold)
    positives, negatives = int((after.labels == 1).sum()), int((after.labels == 0).sum())
    val_recall = float(called[after.labels == 1].mean()) if positives else None
    details = {
        "fitted_on": "val",
        "unit": "radiograph",
        "n": len(after),
        "files": int(len(y)),
        "target_recall": target_recall,
        "target_reached": val_recall is not None and val_recall >= target_recall,
        "val_recall": val_recall,
        "val_specificity": float((called[after.labels == 0] == 0).mean()) if negatives else None,
        "nll_before": radiograph_nll(y, m, file_groups),
        "nll_after": radiograph_nll(y, m, file_groups, temperature),
        "ece_before": expected_calibration_error(before.labels, before.probability),
        "ece_after": expected_calibration_error(after.labels, after.probability),
        "note": _fit_note(positives, negatives),
    }
    return OperatingPoint(threshold=threshold, temperature=temperature, details=details)


def _fit_note(positives: int, negatives: int) -> str:
    if positives == 0:
        return "validation holds no fractured radiograph: threshold left at 0.5 (no threshold reaches the target)"
    if negatives == 0:
        return "validation holds no unfractured radiograph: temperature left at 1"
    return (
        "temperature minimises the validation NLL by radiograph; threshold is the highest whose "
        "validation recall by radiograph reaches target_recall"
    )
