"""Every file a run publishes besides the training's own (train/package.py): metrics.json, the
report, the model card, predictions.csv, the error gallery, the plots, and the operating point
written into model.json. Built from the stage values alone plus the packed dataset's reports and
the model files fetched from the store, so a Retry of the publish stage on another worker writes
the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from boneflow import code_version
from boneflow.config import RetrainConfig
from boneflow.contracts import Acquired, Scores, TrainSummary
from boneflow.evaluate.calibration import OperatingPoint
from boneflow.evaluate.radiographs import by_radiograph, group_of_each_file
from boneflow.evaluate.split_names import shown_splits, split_words
from boneflow.gate.decision import GateDecision
from boneflow.intake.layout import CLASSES
from boneflow.report.error_gallery import draw_error_gallery, most_confident_errors
from boneflow.report.plots import plot_augmentation_preview, plot_confusion_matrix, plot_learning_curves, plot_roc
from boneflow.report.predictions_csv import predictions_csv
from boneflow.report.render import render_model_card, render_report
from boneflow.splits.folds import read_pool
from boneflow.train.augment import TrainPreset
from boneflow.train.package import complete_model_json

PACK_REPORTS = ("cleaning_report.json", "leakage_report.json", "splits.json")
PLOT_NAMES = ("error_gallery.png", "confusion_matrix.png", "roc.png", "learning_curves.png", "augmentation_preview.png")
GALLERY_ROWS = "error_gallery.json"  # the gallery's radiographs, also a Prefect table artifact


def per_class_rows(splits: dict, split_policy: dict | None = None) -> list[dict]:
    """Recall and precision per class and split (radiographs), from each split's confusion
    counts; each set of images once, named as everywhere (evaluate/split_names.py)."""
    rows = []
    for split in shown_splits(splits, split_policy):
        m = splits[split]
        (tn, fp), (fn, tp) = m["confusion"]
        for cls, hit, missed, wrongly in (("fractured", tp, fn, fp), ("not fractured", tn, fp, fn)):
            rows.append(
                {
                    "split": split_words(split, split_policy),
                    "class": cls,
                    "n": hit + missed,
                    "recall": round(hit / (hit + missed), 4) if hit + missed else None,
                    "precision": round(hit / (hit + wrongly), 4) if hit + wrongly else None,
                }
            )
    return rows


def draw_plots(
    out_dir: Path, *, candidate: Scores, trained: TrainSummary, packed, config: RetrainConfig, judged_split: str
) -> dict:
    """{file name: path} of PLOT_NAMES but the gallery, drawn from the values (the preview from
    the packed train images with the run's seed, so it is the image the run's artifact showed).
    The confusion matrix and the ROC count radiographs."""
    judged = candidate.predictions[judged_split]
    rad = by_radiograph(group_of_each_file(judged.paths, judged.groups or None), judged.labels, judged.probability)
    threshold = (candidate.operating_point or {}).get("threshold")
    return {
        "confusion_matrix.png": plot_confusion_matrix(
            candidate.splits[judged_split]["confusion"], list(CLASSES), out_dir / "confusion_matrix.png"
        ),
        "roc.png": plot_roc(rad.labels, rad.probability, out_dir / "roc.png", operating_threshold=threshold),
        "learning_curves.png": plot_learning_curves(trained.history, out_dir / "learning_curves.png"),
        "augmentation_preview.png": augmentation_preview(packed, config, out_dir / "augmentation_preview.png"),
    }


def augmentation_preview(packed, config: RetrainConfig, path: Path) -> Path:
    """What the network sees: packed train images above, their augmented versions below."""
    train = packed.split("train").images
    return plot_augmentation_preview(train, TrainPreset(crop_size=config.image_size), path, seed=config.seed)


def error_gallery(out_dir: Path, *, candidate: Scores, packed, predictor, judged_split: str) -> dict[str, Path]:
    """error_gallery.png and error_gallery.json: the judged split's most confidently wrong
    radiographs (report/error_gallery.py), drawn with the candidate's own Grad-CAM (`predictor`:
    anything with `.explain(image)`, serve's Predictor of the candidate)."""
    rows = most_confident_errors(candidate.predictions[judged_split])
    split = read_pool(packed) if judged_split == "oof" else packed.split(judged_split)
    where = {p: i for i, p in enumerate(split.paths)}
    images = {r["path"]: np.array(split.images[where[r["path"]]]) for r in rows}
    (out_dir / GALLERY_ROWS).write_text(json.dumps(rows, indent=2) + "\n")
    return {
        "error_gallery.png": draw_error_gallery(rows, images, predictor, out_dir / "error_gallery.png"),
        GALLERY_ROWS: out_dir / GALLERY_ROWS,
    }


def write_run_files(
    out_dir: Path,
    *,
    run_id: str,
    config: RetrainConfig,
    acquired: Acquired,
    packed,
    model_dir: Path,
    trained: TrainSummary,
    candidate: Scores,
    decision: GateDecision,
    load_predictor: Callable[[Path], Any],
    members: list[tuple[str, int | None]] | None = None,
) -> dict[str, Path]:
    """Write the run's files into out_dir and return {name in the run folder: local path}.
    model_dir holds the fetched model files (member 0's model.json, the other members' weights);
    its model.json is completed here, once, with `members` (run id, fold) of a fold ensemble and
    the candidate's operating point. `load_predictor(model_dir)` then loads the candidate for the
    error gallery's Grad-CAM (the caller passes serve's Predictor: the report does not import
    the serving code)."""
    reports = {name: packed.dir / name for name in PACK_REPORTS if (packed.dir / name).is_file()}
    cleaning, leakage = (json.loads(reports[f"{n}_report.json"].read_text()) for n in ("cleaning", "leakage"))
    metrics: dict[str, Any] = {  # metrics.json
        "run_id": run_id,
        "dataset": acquired.version,
        "splits": candidate.splits,
        "gate": decision.to_dict(),
        "operating_point": candidate.operating_point,
        "split_policy": candidate.split_policy,
        "contamination": candidate.contamination,
    }
    plots = draw_plots(
        out_dir, candidate=candidate, trained=trained, packed=packed, config=config, judged_split=decision.split
    )
    point = OperatingPoint.from_meta(candidate.operating_point).to_meta() if candidate.operating_point else None
    complete_model_json(model_dir, members=members, operating_point=point)  # serving reads both from it
    gallery = error_gallery(
        out_dir, candidate=candidate, packed=packed, predictor=load_predictor(model_dir), judged_split=decision.split
    )
    (out_dir / "predictions.csv").write_bytes(predictions_csv(candidate.predictions, candidate.split_policy))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "report.md").write_text(
        render_report(
            run_id=run_id,
            metrics=metrics,
            gate=metrics["gate"],
            dataset=acquired.version,
            cleaning_summary=cleaning.get("counts", {}),
            leakage_summary=leakage.get("counts", {}),
            plots={Path(n).stem.replace("_", " "): n for n in plots},
            history=trained.history,
            gallery={  # what the report's error gallery shows
                "image": "error_gallery.png",
                "rows": json.loads(gallery[GALLERY_ROWS].read_text()),
                "split_name": decision.split_name,
            },
        )
    )
    (out_dir / "model_card.md").write_text(
        render_model_card(
            run_id=run_id,
            metrics=metrics,
            dataset=acquired.version,
            config=config.model_dump(),
            model_meta=json.loads((model_dir / "model.json").read_text()),
            leakage_summary=leakage.get("counts", {}),
            gate=metrics["gate"],
            code=code_version(),
        )
    )
    files = {name: out_dir / name for name in ("metrics.json", "report.md", "model_card.md", "predictions.csv")}
    model_files = {p.name: p for p in sorted(model_dir.iterdir()) if p.is_file()}
    return files | reports | model_files | plots | gallery
