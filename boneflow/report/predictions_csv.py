"""runs/<run_id>/predictions.csv (its columns: README, "Honest evaluation", item 7; `threshold`
is the one that decided the file, as cross-fitting decides each fold at its own): for a user to
see what the model gets wrong, and for a later run to pair a cross-fitted champion's OOF rows
with its own, by group (`read_oof_predictions`).
"""

from __future__ import annotations

import csv
import io

from boneflow.contracts import Predictions
from boneflow.evaluate.split_names import shown_splits
from boneflow.intake.layout import CLASSES

COLUMNS = ("path", "group", "split", "fold", "label", "probability", "predicted", "threshold")
MAX_CSV_BYTES = 64 << 20  # ~10,000 rows are ~1 MB; a bigger file is not one boneflow wrote


def predictions_csv(predictions: dict[str, Predictions], split_policy: dict | None) -> bytes:
    """The table, in report split order then path order. A file in two splits that hold the same
    images (evaluate/split_names.py) is listed once, under the more specific (test_clean over
    test) or the judged one (oof over official_test)."""
    rows: dict[str, tuple] = {}  # by path: a later split's row replaces an earlier one's
    shown = shown_splits(predictions, split_policy)
    for split in sorted(shown, key=lambda s: s == "oof"):
        p = predictions[split]
        groups = p.groups or [f"file:{path}" for path in p.paths]
        folds: list[int | str] = list(p.folds) if p.folds else [""] * len(p.paths)
        for path, group, fold, label, prob, called, cut in zip(
            p.paths, groups, folds, p.labels, p.probability, p.predicted, p.file_thresholds()
        ):
            rows[path] = (path, group, split, fold, CLASSES[label], f"{prob:.6f}", CLASSES[called], f"{cut:.6f}")
    order = {s: i for i, s in enumerate(shown)}
    ordered = sorted(rows.values(), key=lambda r: (order[r[2]], r[0]))  # by split, then path
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([COLUMNS, *ordered])
    return out.getvalue().encode()


def read_oof_predictions(data: bytes, *, where: str) -> Predictions | None:
    """The out-of-fold rows of a published predictions.csv as Predictions; None when the file
    has none (a run without cross-fitting, or one published before the file existed). Raises
    ValueError naming `where` and the row when the file is damaged."""
    if len(data) > MAX_CSV_BYTES:
        raise ValueError(f"{where}: {len(data):,} bytes, more than a predictions.csv can be ({MAX_CSV_BYTES:,})")
    reader = csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace")))
    rows = [r for r in reader if r.get("split") == "oof"]
    if not rows:
        return None
    try:
        return Predictions(
            paths=[r["path"] for r in rows],
            labels=[CLASSES.index(r["label"]) for r in rows],
            predicted=[CLASSES.index(r["predicted"]) for r in rows],
            probability=[float(r["probability"]) for r in rows],
            groups=[r["group"] for r in rows],
            thresholds=[float(r["threshold"]) for r in rows],
            folds=[int(r["fold"]) for r in rows],
        )
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: not a boneflow predictions table ({type(err).__name__}: {err})") from None
