"""The judged split's most confidently wrong radiographs (README, "Honest evaluation", item 7),
what a user opens after a refusal: confidence is in the wrong answer, 1 - P for a fracture and P
for a healthy bone, each radiograph shown by one file beside its Grad-CAM (evaluate/gradcam.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from boneflow.contracts import Predictions
from boneflow.evaluate.gradcam import overlay_heatmap
from boneflow.evaluate.radiographs import by_radiograph, group_of_each_file
from boneflow.intake.layout import CLASSES
from boneflow.report.plots import new_figure, save_figure

GALLERY_SIZE = 12


def most_confident_errors(predictions: Predictions) -> list[dict]:
    """Up to GALLERY_SIZE wrong radiographs, most confident first: group, label, probability,
    predicted, files and one file's path (the first by name) for the picture."""
    groups = group_of_each_file(predictions.paths, predictions.groups or None)
    rad = by_radiograph(groups, predictions.labels, predictions.probability)
    cut = by_radiograph(groups, predictions.labels, predictions.file_thresholds()).probability
    called = (rad.probability >= cut).astype(np.int64)
    wrong = np.flatnonzero(called != rad.labels)
    confidence = np.where(rad.labels[wrong] == 1, 1 - rad.probability[wrong], rad.probability[wrong])
    # in reverse name order, so each group keeps its first file by name
    first_file = {group: path for path, group in sorted(zip(predictions.paths, groups), reverse=True)}
    return [
        {
            "group": rad.groups[i],
            "label": CLASSES[int(rad.labels[i])],
            "probability": round(float(rad.probability[i]), 4),
            "predicted": CLASSES[int(called[i])],
            "files": int(rad.files[i]),
            "path": first_file[rad.groups[i]],
        }
        for i in wrong[np.argsort(-confidence, kind="stable")][:GALLERY_SIZE]
    ]


def draw_error_gallery(rows: list[dict], images: dict[str, np.ndarray], predictor, path: Path) -> Path:
    """A grid of (image, Grad-CAM overlay) pairs, one per row, titled with the probability.
    `images`: uint8 [S,S] per path (the packed pixels); `predictor`: a serve.predictor.Predictor
    of the candidate (its preprocessing, temperature and Grad-CAM)."""
    from PIL import Image

    cols = 6  # three radiographs per row, two panels each
    rows_n = max(1, -(-2 * len(rows) // cols))
    fig = new_figure(2.0 * cols, 2.5 * rows_n)
    for k, row in enumerate(rows):
        explained = predictor.explain(Image.fromarray(images[row["path"]]))
        overlay = overlay_heatmap(explained.image, explained.heatmap)
        titles = (f"#{k + 1} {row['label']}\nP(fr)={row['probability']:.2f}", "Grad-CAM")
        for j, (shown, title) in enumerate(zip((explained.image, overlay), titles)):
            ax = fig.add_subplot(rows_n, cols, 2 * k + j + 1)
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_axis_off()
            ax.set_title(title, fontsize=7)
    if not rows:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no wrong radiograph", ha="center", va="center")
        ax.set_axis_off()
    return save_figure(fig, path)
