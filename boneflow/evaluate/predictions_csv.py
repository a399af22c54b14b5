"""runs/<run_id>/predictions.csv: one row per evaluated file, what a user joins, filters and
sorts to see what the model gets wrong (and what cross-run comparisons pair on, by group).

Columns: path (relative to the dataset root), group (duplicate group = radiograph), split,
fold (empty without cross-fitting), label, probability (calibrated P(fractured)), predicted (at
the operating threshold, per file). A file evaluated in two packed splits that hold the same
images is listed once, under the more specific one (evaluate/split_names.py).
"""

from __future__ import annotations

import csv
import io

from boneflow.contracts import Predictions
from boneflow.data.layout import CLASSES
from boneflow.evaluate.split_names import shown_splits

COLUMNS = ("path", "group", "split", "fold", "label", "probability", "predicted")


def prediction_rows(predictions: dict[str, Predictions], split_policy: dict | None) -> list[dict]:
    """The rows, in report split order then path order; later (more specific) splits win."""
    rows: dict[str, dict] = {}
    for split in shown_splits(predictions, split_policy):
        p = predictions[split]
        groups = p.groups or [f"file:{path}" for path in p.paths]
        for path, group, label, prob, called in zip(p.paths, groups, p.labels, p.probability, p.predicted):
            rows[path] = {
                "path": path,
                "group": group,
                "split": split,
                "fold": "",
                "label": CLASSES[label],
                "probability": f"{prob:.6f}",
                "predicted": CLASSES[called],
            }
    order = {s: i for i, s in enumerate(shown_splits(predictions, split_policy))}
    return sorted(rows.values(), key=lambda r: (order[r["split"]], r["path"]))


def predictions_csv(predictions: dict[str, Predictions], split_policy: dict | None) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(prediction_rows(predictions, split_policy))
    return out.getvalue().encode()
