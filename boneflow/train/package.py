"""A trained model as the files a run publishes: model.safetensors, model.json (classes,
preprocessing, the settings and their fingerprint), history.json and train_result.json (the
TrainSummary). The gpu pool hands its result back through these files in the store, so what
they hold is decided here, once, for both dispatch modes."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from boneflow.atomic import write_text
from boneflow.config import RetrainConfig
from boneflow.contracts import TrainSummary
from boneflow.errors import BoneflowError
from boneflow.hashing import sha256_file
from boneflow.train.augment import preprocessing_meta
from boneflow.train.ensemble import member_file
from boneflow.train.fit import TrainResult
from boneflow.train.model import save_model

TRAIN_RESULT = "train_result.json"
# Upload order: train_result.json last, so its presence in the store means the others are there.
MODEL_FILES = ("model.safetensors", "model.json", "history.json", TRAIN_RESULT)


def package_model(
    result: TrainResult,
    out_dir: Path,
    *,
    run_id: str,
    dataset_fingerprint: str,
    config: RetrainConfig,
    classes: tuple[str, ...] | list[str],
    pack_size: int,
    fold: int | None = None,
) -> TrainSummary:
    """Write MODEL_FILES into out_dir and return the summary train_result.json holds."""
    save_model(
        result.model,
        out_dir,
        meta={
            "classes": list(classes),
            "run_id": run_id,
            "dataset_fingerprint": dataset_fingerprint,
            "preprocessing": preprocessing_meta(pack_size=pack_size, image_size=config.image_size),
            "config": config.model_dump(),
            "config_fingerprint": config.fingerprint(),
            "fold": fold,  # the cross-fitting fold this member never saw (None: the single split)
        },
    )
    (out_dir / "history.json").write_text(json.dumps(result.history, indent=2, default=float))
    summary = TrainSummary(
        run_id=run_id,
        dataset_fingerprint=dataset_fingerprint,
        config_fingerprint=config.fingerprint(),
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        resumed_from_epoch=result.resumed_from_epoch or 0,
        seconds=round(result.seconds, 2),
        history=result.history,
        fold=fold,
    )
    (out_dir / TRAIN_RESULT).write_text(summary.model_dump_json(indent=2))
    return summary


def complete_model_json(
    model_dir: Path, *, members: list[tuple[str, int | None]] | None = None, operating_point: dict | None = None
) -> Path:
    """Write the published model.json once, complete: the training's own plus the fold ensemble's
    `members` (as `(run trained in, fold never seen)`, in member order) and the operating point
    (OperatingPoint.to_meta()). Atomic: a crash leaves the training's file, never half of this one."""
    path = Path(model_dir) / "model.json"
    meta = json.loads(path.read_text())
    if members:
        meta["members"] = [
            {
                "weights": member_file(i),
                "sha256": sha256_file(Path(model_dir) / member_file(i)),
                "fold": fold,
                "trained_in": member_run,
            }
            for i, (member_run, fold) in enumerate(members)
        ]
        meta["fold"] = None  # the ensemble as a whole saw every fold
    meta.update(operating_point or {})
    write_text(path, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_train_summary(data: bytes, *, where: str) -> TrainSummary:
    """train_result.json from the store, checked: a malformed one names its key."""
    try:
        return TrainSummary.model_validate_json(data)
    except ValidationError as err:
        raise BoneflowError(f"{where} is not a valid training result: {err.errors()[0]['msg']}") from None
