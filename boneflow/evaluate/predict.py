"""Probabilities from a model on packed uint8 images, and metrics for the evaluation splits.

The one preprocessing for evaluation and inference is `EvalPreset` on images decoded by
`boneflow.data.preprocess.load_xray` at the packed size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from boneflow.evaluate.metrics import split_metrics
from boneflow.train.augment import EvalPreset, numpy_to_tensor
from boneflow.train.device import autocast, use_bf16

EVAL_SPLITS = ("val", "test", "test_clean")


@torch.inference_mode()
def predict_proba(
    model: torch.nn.Module,
    images_uint8,
    *,
    image_size: int,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """P(fractured) for uint8 images [N,S,S] (or one [S,S]) as float64 [N]."""
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
        x = preset(chunk.to(device)).contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0, dtype=np.float64)


def evaluate_splits(
    model: torch.nn.Module,
    packed: Any,
    *,
    image_size: int,
    splits: tuple[str, ...] = EVAL_SPLITS,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """({split: split_metrics}, {split: (labels, prob_fractured)}) — the raw pairs feed the ROC."""
    metrics, raw = {}, {}
    for name in splits:
        split = packed.split(name)
        labels = np.asarray(split.labels, dtype=np.int64)
        probs = predict_proba(model, split.images, image_size=image_size, batch_size=batch_size, device=device)
        metrics[name] = split_metrics(labels, probs)
        raw[name] = (labels, probs)
    return metrics, raw
