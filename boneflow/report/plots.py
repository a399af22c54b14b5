"""Evaluation plots as PNG files (matplotlib, Agg backend, explicit figures, closed after save)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def new_figure(width: float, height: float):
    # Figure objects directly (no pyplot): no global state, no GUI backend, safe in workers.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png")
    figure.clear()
    return path


def plot_confusion_matrix(cm, classes, path: Path) -> Path:
    """cm = [[tn, fp], [fn, tp]] (rows true, columns predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    figure = new_figure(4.2, 3.8)
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(cm, cmap="Blues")
    for (row, col), value in np.ndenumerate(cm):
        dark = value > cm.max() / 2
        ax.text(col, row, str(value), ha="center", va="center", color="white" if dark else "black", fontsize=12)
    ax.set_xticks(range(len(classes)), labels=list(classes))
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return save_figure(figure, path)


def plot_learning_curves(history: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch, train and val (history = fit's on_epoch stats)."""
    epochs = [h["epoch"] for h in history]
    figure = new_figure(8, 3.4)
    for i, (metric, title) in enumerate((("loss", "Loss"), ("acc", "Accuracy"))):
        ax = figure.add_subplot(1, 2, i + 1)
        ax.plot(epochs, [h[f"train_{metric}"] for h in history], marker="o", label="train")
        ax.plot(epochs, [h[f"val_{metric}"] for h in history], marker="o", label="val")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(figure, path)


def plot_roc(labels, probs, path: Path, *, operating_threshold: float | None = None) -> Path:
    """ROC of P(fractured), with the operating point (and the 0.5 point) marked; a note instead
    of a curve when the split has one class only."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels, probs = np.asarray(labels), np.asarray(probs)
    figure = new_figure(4.2, 4.0)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    if len(np.unique(labels)) == 2:
        fpr, tpr, _ = roc_curve(labels, probs, pos_label=1)
        ax.plot(fpr, tpr, label=f"AUROC {roc_auc_score(labels, probs):.3f}")
        marks = [(0.5, "s", "grey")]
        if operating_threshold is not None and operating_threshold != 0.5:
            marks.append((operating_threshold, "o", "red"))
        for threshold, marker, colour in marks:
            called = probs >= threshold  # x: false positive rate, y: true positive rate
            x, y = float(called[labels == 0].mean()), float(called[labels == 1].mean())
            label = f"threshold {threshold:.3f}: recall {y:.2f}, specificity {1 - x:.2f}"
            ax.plot([x], [y], marker=marker, color=colour, linestyle="none", markersize=7, label=label)
        ax.legend(loc="lower right", fontsize=7)
    else:
        ax.text(0.5, 0.5, "one class only: ROC undefined", ha="center", va="center")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (fractured recall)")
    ax.set_title("ROC" + (" (red: operating point)" if operating_threshold not in (None, 0.5) else ""))
    return save_figure(figure, path)


def plot_augmentation_preview(images_uint8, preset, path: Path, *, seed: int = 0, count: int = 8) -> Path:
    """Top row: packed images; bottom row: the same images after `preset` (a TrainPreset)."""
    import torch

    images = torch.from_numpy(np.array(images_uint8[:count]))  # a writable copy: torch warns on read-only memmaps
    augmented = preset(images, torch.Generator().manual_seed(seed))[:, 0].float()
    # Undo the normalisation so the preview shows what the network's pixels look like.
    augmented = (augmented * preset.std + preset.mean).clamp(0, 1).numpy()
    n = len(images)
    figure = new_figure(1.6 * n, 3.5)
    for i in range(n):
        for row, picture, vmax in ((0, images[i].numpy(), 255), (1, augmented[i], 1.0)):
            ax = figure.add_subplot(2, n, row * n + i + 1)
            ax.imshow(picture, cmap="gray", vmin=0, vmax=vmax)
            ax.set_axis_off()
            if i == 0:
                ax.set_title("packed" if row == 0 else "augmented", fontsize=8, loc="left")
    return save_figure(figure, path)
