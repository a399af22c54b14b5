"""The operating point of a model: a temperature that makes its probabilities mean what they
say, and the decision threshold on those probabilities, both chosen on validation.

A two-class softmax is a sigmoid of the logit margin m = z_fractured - z_not, so a temperature
T turns it into P(fractured) = sigmoid(m / T). T is fitted by minimising the validation
negative log-likelihood (a convex problem in 1/T, so a bounded 1-D search on log T finds it).
The threshold is the highest one whose validation fractured recall still reaches the target,
as screening tools set a sensitivity and take the specificity that comes with it.

Both live in model.json as top-level `threshold` and `temperature` (with the fit's details under
`calibration`); a model.json without them means threshold 0.5 and temperature 1.0, the argmax
decision every model made before they existed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boneflow.errors import BoneflowError

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


def nll(labels, margins, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under sigmoid(margin / T)."""
    y = np.asarray(labels, dtype=np.float64)
    z = np.asarray(margins, dtype=np.float64) / temperature
    if len(y) == 0:
        return 0.0
    # -log sigmoid(z) = softplus(-z), computed stably
    signed = np.where(y == 1, z, -z)
    return float(np.mean(np.logaddexp(0.0, -signed)))


def fit_temperature(labels, margins, *, iterations: int = 80) -> float:
    """T in [T_MIN, T_MAX] minimising the NLL (golden-section search on log T)."""
    y = np.asarray(labels)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return DEFAULT_TEMPERATURE  # one class: the NLL is minimised at a bound, which means nothing
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(y, margins, math.exp(a)), nll(y, margins, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(y, margins, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(y, margins, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def recall_threshold_margin(labels, margins, *, min_recall: float) -> float | None:
    """The decision margin that keeps validation fractured recall >= min_recall with the most
    images called not fractured; None when validation has no fractured image.

    Any cut between the k-th highest fractured margin and the next lower validation margin makes
    the same validation decisions; the midpoint is taken so rounding noise in a re-computed
    margin cannot flip that image (k = ceil(min_recall * positives), at least 1)."""
    y = np.asarray(labels)
    m = np.asarray(margins, dtype=np.float64)
    positives = np.sort(m[y == 1])[::-1]
    if len(positives) == 0:
        return None
    # round first: 0.9 * 10 is 9.000000000000002 in floating point
    k = max(1, math.ceil(round(min_recall * len(positives), 9)))
    cut = positives[k - 1]
    below = m[m < cut]
    if len(below) == 0:
        return float(cut - 1.0)
    return float((cut + below.max()) / 2)


@dataclass(frozen=True)
class OperatingPoint:
    """How a model's margins become what the user sees: P = sigmoid(m / temperature), and the
    label `fractured` when P >= threshold."""

    threshold: float = DEFAULT_THRESHOLD
    temperature: float = DEFAULT_TEMPERATURE
    details: dict = field(default_factory=dict)  # how it was chosen (stored as model.json `calibration`)

    def __post_init__(self):
        if not (0.0 <= self.threshold <= 1.0) or math.isnan(self.threshold):
            raise CalibrationError(f"threshold={self.threshold} must be between 0 and 1.")
        if not self.temperature > 0 or math.isinf(self.temperature):
            raise CalibrationError(f"temperature={self.temperature} must be a positive number.")

    def probability(self, margins) -> np.ndarray:
        return sigmoid(np.asarray(margins, dtype=np.float64) / self.temperature)

    def predict(self, margins) -> np.ndarray:
        return (self.probability(margins) >= self.threshold).astype(np.int64)

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


def fit_operating_point(labels, margins, *, min_recall: float) -> OperatingPoint:
    """Temperature and threshold from validation labels and margins."""
    from boneflow.evaluate.metrics import expected_calibration_error

    y = np.asarray(labels, dtype=np.int64)
    m = np.asarray(margins, dtype=np.float64)
    temperature = fit_temperature(y, m)
    cut = recall_threshold_margin(y, m, min_recall=min_recall)
    threshold = DEFAULT_THRESHOLD if cut is None else float(sigmoid(cut / temperature))
    point = OperatingPoint(threshold=threshold, temperature=temperature)
    predicted = point.predict(m)
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    details = {
        "fitted_on": "val",
        "n": int(len(y)),
        "min_recall": min_recall,
        "val_recall": float((predicted[y == 1] == 1).mean()) if positives else None,
        "val_specificity": float((predicted[y == 0] == 0).mean()) if negatives else None,
        "nll_before": nll(y, m),
        "nll_after": nll(y, m, temperature),
        "ece_before": expected_calibration_error(y, sigmoid(m)),
        "ece_after": expected_calibration_error(y, point.probability(m)),
        "note": _fit_note(positives, negatives),
    }
    return OperatingPoint(threshold=threshold, temperature=temperature, details=details)


def _fit_note(positives: int, negatives: int) -> str:
    if positives == 0:
        return "validation holds no fractured image: threshold left at 0.5, temperature at 1"
    if negatives == 0:
        return "validation holds no unfractured image: temperature left at 1"
    return "temperature minimises validation NLL; threshold is the highest meeting min_recall on validation"


def write_operating_point(model_json: Path, point: OperatingPoint) -> Path:
    """Store the operating point in a model.json file (same layout as save_model writes)."""
    path = Path(model_json)
    meta = json.loads(path.read_text())
    meta.update(point.to_meta())
    path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return path
