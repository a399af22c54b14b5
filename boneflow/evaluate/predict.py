"""Probabilities from a model on packed uint8 images, and metrics for the evaluation splits.

The one preprocessing for evaluation and inference is `EvalPreset` on images decoded by
`boneflow.intake.decode.load_xray` at the packed size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from boneflow.evaluate.calibration import OperatingPoint, sigmoid
from boneflow.evaluate.metrics import (
    FILE_FIELDS,
    THRESHOLD_FIELDS,
    expected_calibration_error,
    headline_intervals,
    split_metrics,
)
from boneflow.evaluate.radiographs import by_radiograph, group_of_each_file
from boneflow.splits.packed import PackedSplits
from boneflow.train.augment import EvalPreset, numpy_to_tensor
from boneflow.train.device import autocast, fast_layout, use_bf16

EVAL_SPLITS = ("val", "test", "test_clean", "official_test")  # report order; train is never scored


@torch.inference_mode()
def predict_margins(
    model: torch.nn.Module,
    images_uint8,
    *,
    image_size: int,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Logit margin z_fractured - z_not (float64 [N]) for uint8 images [N,S,S] (or one [S,S]):
    softmax's P(fractured) is sigmoid of it, and a temperature divides it."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if next(model.parameters()).device != device:
        model = model.to(device)
    model.eval()
    bf16 = use_bf16(device)
    preset = EvalPreset(crop_size=image_size)
    images = images_uint8[None] if images_uint8.ndim == 2 else images_uint8
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        if isinstance(chunk, np.ndarray):
            chunk = numpy_to_tensor(chunk)
        x = fast_layout(preset(chunk.to(device)))
        with autocast(device, bf16):
            logits = model(x).float()
        out.append((logits[:, 1] - logits[:, 0]).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0, dtype=np.float64)


def predict_proba(model: torch.nn.Module, images_uint8, *, temperature: float = 1.0, **margin_args) -> np.ndarray:
    """P(fractured) for uint8 images [N,S,S] (or one [S,S]) as float64 [N], at `temperature`
    (1.0: the plain softmax); `margin_args` are predict_margins' (image_size, batch_size, device)."""
    return OperatingPoint(temperature=temperature).probability(predict_margins(model, images_uint8, **margin_args))


@dataclass(frozen=True)
class SplitScores:
    """One model's raw output on one split, in the packed order."""

    labels: np.ndarray  # int64 [N]
    margins: np.ndarray  # float64 [N], z_fractured - z_not
    paths: list[str]
    groups: list[str] | None = None  # duplicate group per file (None: each file its own radiograph)


def evaluation_splits(packed: PackedSplits) -> tuple[str, ...]:
    """Every split the pack holds except train (in-memory packs may lack official_test), known ones first."""
    held = packed.split_names()
    return tuple([s for s in EVAL_SPLITS if s in held] + [s for s in held if s not in EVAL_SPLITS + ("train",)])


def score_splits(
    model: torch.nn.Module, packed: PackedSplits, *, image_size: int, splits: tuple[str, ...] | None = None
) -> dict[str, SplitScores]:
    """{split: SplitScores} for `splits` (default: every evaluation split the pack holds)."""
    out = {}
    for name in splits or evaluation_splits(packed):
        split = packed.split(name)
        margins = predict_margins(model, split.images, image_size=image_size)
        out[name] = SplitScores(np.asarray(split.labels, dtype=np.int64), margins, list(split.paths))
    return out


def split_report(scores: SplitScores, point: OperatingPoint) -> dict:
    """A split's metrics by radiograph at the operating point, with 95 % intervals; the
    threshold-dependent ones at 0.5 (`at_0.5`), the ECE before the temperature, and the per-file
    figures under `by_file`."""
    probs = point.probability(scores.margins)
    thresholds = np.full(len(probs), point.threshold)
    metrics = report_from_probabilities(scores, probs, thresholds, sigmoid(scores.margins))
    metrics["temperature"] = point.temperature
    return metrics


def report_from_probabilities(
    scores: SplitScores, probs: np.ndarray, thresholds: np.ndarray, uncalibrated: np.ndarray
) -> dict:
    """split_report's figures from each file's calibrated probability and the threshold that
    decides it (one per file: cross-fitting decides each fold at its own point)."""
    groups = group_of_each_file(scores.paths, scores.groups)
    rad = by_radiograph(groups, scores.labels, probs)
    cut = by_radiograph(groups, scores.labels, thresholds).probability  # a radiograph's files share one
    called = (rad.probability >= cut).astype(np.int64)
    threshold = float(cut[0]) if len(cut) and np.all(cut == cut[0]) else float(np.median(thresholds))
    metrics = split_metrics(rad.labels, rad.probability, threshold=threshold, predicted=called)
    metrics["files"] = int(len(scores.labels))
    metrics.update(headline_intervals(rad.labels, rad.probability, predicted=called))
    at_half = split_metrics(rad.labels, rad.probability, threshold=0.5)
    metrics["at_0.5"] = {k: at_half[k] for k in THRESHOLD_FIELDS}
    raw = by_radiograph(groups, scores.labels, uncalibrated)
    metrics["ece_uncalibrated"] = expected_calibration_error(raw.labels, raw.probability) if len(rad) else None
    metrics["mixed_label_groups"] = rad.mixed
    per_file = split_metrics(
        scores.labels, probs, threshold=threshold, predicted=(probs >= thresholds).astype(np.int64)
    )
    metrics["by_file"] = {k: per_file[k] for k in FILE_FIELDS}
    return metrics
