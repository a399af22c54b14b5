"""Plots write real PNGs; predict_proba/score_splits use the eval preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from boneflow.evaluate.calibration import OperatingPoint
from boneflow.evaluate.predict import evaluation_splits, predict_margins, predict_proba, score_splits, split_report
from boneflow.intake.layout import CLASSES
from boneflow.report.plots import plot_augmentation_preview, plot_confusion_matrix, plot_learning_curves, plot_roc
from boneflow.splits.pack import PackedDataset
from boneflow.train.augment import EvalPreset, TrainPreset
from boneflow.train.model import build_model
from demo_helpers import make_packed

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 1000


def test_all_plots_write_pngs(tmp_path):
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5 + e / 10, "val_acc": 0.5 + e / 12}
        for e in range(1, 4)
    ]
    labels, probs = np.array([0, 0, 1, 1, 1]), np.array([0.2, 0.6, 0.7, 0.4, 0.9])
    packed = make_packed(size=48, n_train=8, n_val=2, n_test=2)
    paths = [
        plot_confusion_matrix([[5, 2], [1, 7]], ("not fractured", "fractured"), tmp_path / "cm.png"),
        plot_learning_curves(history, tmp_path / "curves.png"),
        plot_roc(labels, probs, tmp_path / "roc.png"),
        plot_roc(labels, probs, tmp_path / "roc_op.png", operating_threshold=0.3),
        plot_roc(np.ones(3), np.array([0.2, 0.5, 0.9]), tmp_path / "roc_one_class.png"),
        plot_augmentation_preview(
            packed.split("train").images, TrainPreset(crop_size=40), tmp_path / "sub" / "aug.png"
        ),
    ]
    assert all(_is_png(p) for p in paths), paths


def test_predict_proba_is_softmax_of_eval_preset():
    torch.manual_seed(0)
    model = build_model().eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 36, 36), dtype=np.uint8)
    with torch.no_grad():
        expected = torch.softmax(model(EvalPreset(crop_size=32)(images)), 1)[:, 1].numpy()
    probs = predict_proba(model, images, image_size=32, batch_size=2, device="cpu")
    assert probs.shape == (5,) and probs.dtype == np.float64
    # bf16 autocast may be on for this CPU: agreement within bf16 precision.
    assert np.allclose(probs, expected, atol=0.03)
    # oneDNN may pick other bf16 kernels for another batch size: equal within bf16 precision.
    again = predict_proba(model, images, image_size=32, batch_size=5, device="cpu")
    assert np.allclose(probs, again, atol=0.02)


def test_score_splits_scores_every_evaluation_split_and_reports_it():
    packed = make_packed(size=36, n_train=4, n_val=6, n_test=8)
    model = build_model().eval()
    scores = score_splits(model, packed, image_size=32)
    assert set(scores) == {"val", "test", "test_clean"}
    metrics = {name: split_report(s, OperatingPoint()) for name, s in scores.items()}
    assert metrics["test"]["n"] == 8 and metrics["test_clean"]["n"] == 4
    assert np.array_equal(scores["val"].labels, packed.split("val").labels) and scores["val"].margins.shape == (6,)


def test_evaluation_scores_every_packed_split_but_train():
    packed = make_packed(size=36, n_train=4, n_val=6, n_test=8)
    assert evaluation_splits(packed) == ("val", "test", "test_clean")
    packed.splits["official_test"] = packed.splits["test"]  # packs with the dataset's own test
    assert evaluation_splits(packed) == ("val", "test", "test_clean", "official_test")

    # A packed folder holds every split, official_test included.
    held = {"train": {}, "official_test": {}, "val": {}, "test_clean": {}, "test": {}}
    on_disk = PackedDataset(Path("unused"), 36, CLASSES, "ab" * 8, {"splits": held})
    assert evaluation_splits(on_disk) == ("val", "test", "test_clean", "official_test")


def test_a_missing_split_names_the_splits_held():
    packed = make_packed(size=36, n_train=4, n_val=6, n_test=8)
    with pytest.raises(KeyError, match="official_test.*test_clean"):
        packed.split("official_test")


def test_temperature_and_margins_give_the_same_probabilities_as_softmax():
    torch.manual_seed(0)
    model = build_model().eval()
    images = np.random.default_rng(1).integers(0, 256, (4, 36, 36), dtype=np.uint8)
    margins = predict_margins(model, images, image_size=32, device="cpu")
    probs = predict_proba(model, images, image_size=32, device="cpu")
    assert np.allclose(probs, 1 / (1 + np.exp(-margins)))
    hot = predict_proba(model, images, image_size=32, device="cpu", temperature=3.0)
    assert np.allclose(hot, 1 / (1 + np.exp(-margins / 3.0)))
    assert np.all(np.abs(hot - 0.5) <= np.abs(probs - 0.5) + 1e-12)
