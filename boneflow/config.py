"""The one typed config of boneflow: its uses, why frozen and flat, the views it gives the core
(docs/ARCHITECTURE.md, "The core, package by package"). Frozen also so a value cannot change under
a task after its cache key was computed. Defaults come from settings.py, which runs without pydantic
(the training core on a GPU box with only torch); the bounds and descriptions, about what a user may
ask for, live here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from boneflow.settings import TARGET_RECALL, DataSettings, GatePolicy, SplitPolicy, TrainSettings, pack_size_for

KAGGLE_HANDLE = "bmadushanirodrigo/fracture-multi-region-x-ray-data"
DEFAULT_STORE = "boneflow-store"

# Fields that do not change the trained model: they never enter the config fingerprint, so
# switching store, dispatch or `force` does not count as "a different model".
_NOT_MODEL_FIELDS = {
    "store_url",
    "dispatch",
    "force",
    "data_dir",
    "kaggle_handle",
    "workers",
    "dispatch_start_timeout",
    "keep_checkpoints",
}

# A location without user-info: no '@', or a URL whose authority (between '://' and the next '/')
# has none, or a path whose first '@' comes after a '/' (and that does not start with '//').
# Also in the JSON schema, so a deployment that enforces its schema refuses such a value before
# the flow run (and its parameters) is even stored. No lookarounds: JSON Schema and pydantic's
# regex engine both take it.
NO_USERINFO_PATTERN = r"^(?:[^@]*|[A-Za-z][A-Za-z0-9+.\-]*://[^/@]*/.*|(?:[^:@/][^:@]*)?/[^/].*)$"
DEVICE_PATTERN = r"^(?:auto|cpu|mps|cuda(?::[0-9]+)?)$"
# torch.manual_seed takes up to 2**64-1, but fit() seeds each epoch with seed * 1_000_003 + epoch,
# which must stay below that; 2**32-1 does, and fits numpy's legacy seeding and the UI's numbers.
MAX_SEED = 2**32 - 1


class RetrainConfig(BaseModel):
    """Everything a retrain needs. Defaults are the production settings."""

    # hide_input_in_errors: a refused value (a store URL with a secret in it) is never echoed
    # back in the error, which reaches logs and the flow run's state message.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # --- data source --------------------------------------------------------------------
    data_dir: str | None = Field(
        default=None,
        description="Local copy of the dataset (any folder above train/val/test). "
        "Empty: download from Kaggle with kagglehub.",
        json_schema_extra={"pattern": NO_USERINFO_PATTERN},
    )
    kaggle_handle: str = Field(
        default=KAGGLE_HANDLE,
        description="Kaggle dataset handle; add '/versions/N' to pin a version (unversioned means latest).",
        min_length=3,
    )
    # --- store --------------------------------------------------------------------------
    store_url: str = Field(
        default=DEFAULT_STORE,
        description="Where runs, datasets and the champion live: a folder path, file://..., "
        "or s3://bucket/prefix (endpoint from AWS_ENDPOINT_URL, credentials from the AWS chain; "
        "never in the URL).",
        min_length=1,
        json_schema_extra={"pattern": NO_USERINFO_PATTERN},
    )
    # --- data preparation ---------------------------------------------------------------
    image_size: int = Field(
        default=TrainSettings.image_size,
        ge=32,
        le=512,
        description="Side of the square crop the network sees (train and eval), in pixels.",
    )
    min_side: int = Field(
        default=DataSettings.min_side,
        ge=1,
        le=4096,
        description="Images whose shorter side is below this many pixels are excluded as too small.",
    )
    leak_max_distance: int = Field(
        default=DataSettings.leak_max_distance,
        ge=0,
        le=256,
        description="Largest perceptual-hash Hamming distance (of 256 bits) still counted as a copy across splits.",
    )
    split_policy: SplitPolicy = Field(
        default=DataSettings.split_policy,
        description="How images are split. official: the dataset's own train/val/test, judged on the "
        "leak-free test (official test images with no copy in train/val). regroup: pool the images, one "
        "file per byte-identical set, whole duplicate groups to train/val/test 70/10/20 per class and "
        "source. auto: official when its leak-free test keeps >= min_gate_n radiographs and half of the "
        "official test, else regroup.",
    )
    folds: int = Field(
        default=DataSettings.folds,
        ge=1,
        le=10,
        description="Cross-fitting under split policy regroup: every radiograph is put in one of this many "
        "folds (by a hash of its duplicate group, stable across data versions), member i trains on the other "
        "folds and predicts fold i, the gate judges every radiograph out of fold, and the published model is "
        "the ensemble of the members. 1: the single 70/10/20 split and one model.",
    )
    workers: int = Field(
        default=DataSettings.workers,
        ge=0,
        le=64,
        description="Processes for decoding images; 0 means one per CPU core.",
    )
    max_image_mb: int = Field(
        default=DataSettings.max_image_mb,
        ge=1,
        le=1024,
        description="Image files larger than this many MiB are excluded as too_large, decided from "
        "the file size before reading it.",
    )
    # --- training -----------------------------------------------------------------------
    epochs: int = Field(default=TrainSettings.epochs, ge=1, le=500, description="Maximum training epochs.")
    batch_size: int = Field(default=TrainSettings.batch_size, ge=2, le=4096, description="Images per training step.")
    lr: float = Field(
        default=TrainSettings.lr, gt=0, le=1.0, description="Peak AdamW learning rate (one-cycle schedule)."
    )
    weight_decay: float = Field(default=TrainSettings.weight_decay, ge=0, le=1.0, description="AdamW weight decay.")
    label_smoothing: float = Field(
        default=TrainSettings.label_smoothing, ge=0, lt=0.5, description="Cross-entropy label smoothing."
    )
    rotation_degrees: float = Field(
        default=TrainSettings.rotation_degrees,
        ge=0,
        le=180,
        description="Training augmentation: rotation drawn from [-d, d] degrees.",
    )
    crop_min_area: float = Field(
        default=TrainSettings.crop_min_area,
        gt=0,
        le=1.0,
        description="Training augmentation: smallest fraction of the image area a random crop covers.",
    )
    class_weighted: bool = Field(
        default=TrainSettings.class_weighted,
        description="Weight the loss by the inverse class frequency of the train split.",
    )
    patience: int = Field(
        default=TrainSettings.patience,
        ge=0,
        le=500,
        description="Stop after this many epochs without a better val loss; 0 disables early stopping.",
    )
    seed: int = Field(
        default=TrainSettings.seed, ge=0, le=MAX_SEED, description="Seed for data order, augmentation and init."
    )
    pretrained: bool = Field(
        default=TrainSettings.pretrained,
        description="Start from torchvision's ImageNet resnet18 weights: weights_path, else the torch "
        "hub cache ($TORCH_HOME), downloaded into it once (sha256-checked) when missing. Off: random init.",
    )
    weights_path: str | None = Field(
        default=None,
        description="Path to resnet18 ImageNet weights (.pth), for machines without network; never "
        "downloaded. Empty: the torch hub cache, downloading once when missing.",
    )
    compile: bool = Field(
        default=TrainSettings.compile,
        description="Use torch.compile for the model (slower start, faster epochs on GPU).",
    )
    device: str = Field(
        default=TrainSettings.device,
        pattern=DEVICE_PATTERN,
        description="Training device: auto (cuda if present, else cpu), cpu, cuda, cuda:N, mps.",
    )
    # --- gate ---------------------------------------------------------------------------
    min_accuracy: float = Field(
        default=GatePolicy.min_accuracy,
        ge=0,
        le=1,
        description="Gate: lowest leak-free test accuracy that may be promoted.",
    )
    min_recall: float = Field(
        default=GatePolicy.min_recall,
        ge=0,
        le=1,
        description="Gate: lowest fractured recall (sensitivity) on the leak-free test split.",
    )
    max_regression: float = Field(
        default=GatePolicy.max_regression,
        ge=0,
        le=1,
        description="Gate: largest drop in leak-free test accuracy against the champion re-scored on the same split.",
    )
    min_gate_n: int = Field(
        default=GatePolicy.min_n,
        ge=0,
        description="Gate: fewest radiographs (duplicate groups) the judged split must hold; below it the "
        "gate refuses to promote.",
    )
    target_recall: float = Field(
        default=TARGET_RECALL,
        gt=0,
        le=1,
        description="Operating point: the decision threshold is the highest whose validation fractured "
        "recall by radiograph reaches this (a sensitivity target, independent of the gate's min_recall floor).",
    )
    # --- orchestration ------------------------------------------------------------------
    dispatch: Literal["local", "deployment"] = Field(
        default="local",
        description="local: train in this process; deployment: run the train-gpu deployment on the gpu work pool.",
    )
    dispatch_start_timeout: int = Field(
        # Scaling a GPU node up from zero and pulling a multi-GB CUDA image take minutes; without
        # a limit, a run nothing can start (no worker, no GPU node, an image that cannot be
        # pulled) would keep the retrain waiting forever.
        default=1800,
        ge=10,
        le=86400,
        description="dispatch=deployment: seconds the training flow run may take to start running "
        "on the gpu pool; after that it is cancelled and the retrain fails naming the pool.",
    )
    force: bool = Field(default=False, description="Retrain even when data and config equal the champion's.")
    keep_checkpoints: bool = Field(
        default=False,
        description="Keep the run's training checkpoints (runs/<run_id>/checkpoints/, ~180 MB each) after "
        "it is published. Off: they are deleted at publish; they exist only to resume an unfinished run.",
    )

    def __setattr__(self, name: str, value: object) -> None:
        # pydantic's own frozen_instance error repeats the assigned value (hide_input_in_errors does
        # not cover it), so a URL with a secret in it would reach a log: refuse without the value.
        raise TypeError(
            f"RetrainConfig is frozen: {name} cannot be assigned. Make a new config instead: "
            f"RetrainConfig.model_validate({{**config.model_dump(), {name!r}: ...}}) (validated)."
        )

    @field_validator("data_dir", "weights_path")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        # The UI form sends "" for a cleared text box; treat it as "not set".
        return value or None

    @field_validator("store_url", "data_dir", mode="before")
    @classmethod
    def _no_credentials(cls, value, info):
        # Runs before anything else sees the value; the message never repeats it.
        if isinstance(value, str) and not re.fullmatch(NO_USERINFO_PATTERN, value):
            raise ValueError(
                f"{info.field_name} carries user-info ('name:secret@' before the host). Credentials "
                "in a URL end up in the UI, logs and model.json: remove them and give them to the "
                "worker through its environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                "~/.aws, an instance role); if a secret was in it, rotate that secret."
            )
        return value

    @property
    def max_bytes(self) -> int:
        """`max_image_mb` in bytes: the size limit validation applies to each file."""
        return self.data_settings().max_bytes

    @property
    def pack_size(self) -> int:
        """Stored side of packed images: 8/7 of the crop (256 for 224), like ImageNet's resize/crop."""
        return pack_size_for(self.image_size)

    def fingerprint(self) -> str:
        """Stable short hash of the fields that determine the trained model (cache keys, skip decision)."""
        model_fields = {k: v for k, v in self.model_dump().items() if k not in _NOT_MODEL_FIELDS}
        blob = json.dumps(model_fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def train_settings(self) -> TrainSettings:
        """What the training core takes: every TrainSettings field, same name, from this config."""
        values = {f.name: getattr(self, f.name) for f in fields(TrainSettings)}
        return TrainSettings(**{**values, "weights_path": Path(self.weights_path) if self.weights_path else None})

    def gate_policy(self) -> GatePolicy:
        """What the gate takes (its split stays the policy's own: the leak-free test)."""
        return GatePolicy(
            min_accuracy=self.min_accuracy,
            min_recall=self.min_recall,
            max_regression=self.max_regression,
            min_n=self.min_gate_n,
        )

    def data_settings(self) -> DataSettings:
        """What validation, the leakage audit and split planning take."""
        return DataSettings(**{f.name: getattr(self, f.name) for f in fields(DataSettings)})
