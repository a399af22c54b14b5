"""The one typed config of boneflow.

`RetrainConfig` is the `retrain` flow's parameter (Prefect builds the UI form from it), the
source of the CLI's defaults, and is written into `model.json` so the settings travel with the
weights. Every field has a description, a default and bounds.

The core's training and data functions take plain keyword arguments or the small views built
here (`train_settings()`), so they can run on a GPU box that has only torch installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from boneflow.train.settings import TrainSettings

KAGGLE_HANDLE = "bmadushanirodrigo/fracture-multi-region-x-ray-data"
DEFAULT_STORE = "boneflow-store"

# Fields that do not change the trained model: they never enter the config fingerprint, so
# switching store, dispatch or `force` does not count as "a different model".
_NOT_MODEL_FIELDS = {"store_url", "dispatch", "force", "data_dir", "kaggle_handle", "workers", "dispatch_start_timeout"}

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
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

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
        default=224,
        ge=32,
        le=512,
        description="Side of the square crop the network sees (train and eval), in pixels.",
    )
    min_side: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Images whose shorter side is below this many pixels are excluded as too small.",
    )
    leak_max_distance: int = Field(
        # Of the 256-bit phash (imagehash hash_size=16). On the demo sets (seeds 0 and 1, 2,500
        # images) copies re-encoded at JPEG q30-60, resized 0.35-0.5x, mirrored, rotated 90
        # degrees or contrast-changed stayed <= 16 (<= 22 all combined) and no distinct pair came
        # closer than 30; see scripts/measure_leakage.py. Must match leakage.DEFAULT_MAX_DISTANCE.
        default=26,
        ge=0,
        le=256,
        description="Largest perceptual-hash Hamming distance (of 256 bits) still counted as a copy across splits.",
    )
    split_policy: Literal["auto", "official", "regroup"] = Field(
        default="auto",
        description="How images are split. official: the dataset's own train/val/test, judged on the "
        "leak-free test (official test images with no copy in train/val). regroup: pool the images, one "
        "file per byte-identical set, whole duplicate groups to train/val/test 70/10/20 per class and "
        "source. auto: official when its leak-free test keeps >= min_gate_n images and half of the "
        "official test, else regroup.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes for decoding images; 0 means one per CPU core.",
    )
    max_image_mb: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Image files larger than this many MiB are excluded as too_large, decided from "
        "the file size before reading it.",
    )
    # --- training -----------------------------------------------------------------------
    epochs: int = Field(default=12, ge=1, le=500, description="Maximum training epochs.")
    batch_size: int = Field(default=64, ge=2, le=4096, description="Images per training step.")
    lr: float = Field(default=1e-3, gt=0, le=1.0, description="Peak AdamW learning rate (one-cycle schedule).")
    weight_decay: float = Field(default=0.05, ge=0, le=1.0, description="AdamW weight decay.")
    label_smoothing: float = Field(default=0.05, ge=0, lt=0.5, description="Cross-entropy label smoothing.")
    rotation_degrees: float = Field(
        default=10.0,
        ge=0,
        le=180,
        description="Training augmentation: rotation drawn from [-d, d] degrees.",
    )
    crop_min_area: float = Field(
        default=0.6,
        gt=0,
        le=1.0,
        description="Training augmentation: smallest fraction of the image area a random crop covers.",
    )
    class_weighted: bool = Field(
        default=True,
        description="Weight the loss by the inverse class frequency of the train split.",
    )
    patience: int = Field(
        default=4,
        ge=0,
        le=500,
        description="Stop after this many epochs without a better val loss; 0 disables early stopping.",
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Seed for data order, augmentation and init.")
    pretrained: bool = Field(
        default=True,
        description="Start from torchvision's ImageNet resnet18 weights: weights_path, else the torch "
        "hub cache ($TORCH_HOME), downloaded into it once (sha256-checked) when missing. Off: random init.",
    )
    weights_path: str | None = Field(
        default=None,
        description="Path to resnet18 ImageNet weights (.pth), for machines without network; never "
        "downloaded. Empty: the torch hub cache, downloading once when missing.",
    )
    compile: bool = Field(
        default=False, description="Use torch.compile for the model (slower start, faster epochs on GPU)."
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="Training device: auto (cuda if present, else cpu), cpu, cuda, cuda:N, mps.",
    )
    # --- gate ---------------------------------------------------------------------------
    min_accuracy: float = Field(
        default=0.90, ge=0, le=1, description="Gate: lowest leak-free test accuracy that may be promoted."
    )
    min_recall: float = Field(
        default=0.90, ge=0, le=1, description="Gate: lowest fractured recall (sensitivity) on the leak-free test split."
    )
    max_regression: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Gate: largest drop in leak-free test accuracy against the champion re-scored on the same split.",
    )
    min_gate_n: int = Field(
        default=200,
        ge=0,
        description="Gate: fewest images the judged split must hold; below it the gate refuses to promote.",
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
    force: bool = Field(
        default=False,
        description="Retrain even when data and config equal the champion's.",
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
        return self.max_image_mb * 1024 * 1024

    @property
    def pack_size(self) -> int:
        """Stored side of packed images: 8/7 of the crop (256 for 224), like ImageNet's resize/crop."""
        return int(round(self.image_size * 8 / 7))

    def model_fields_dict(self) -> dict:
        """The fields that determine the trained model (what `fingerprint` hashes)."""
        return {k: v for k, v in self.model_dump().items() if k not in _NOT_MODEL_FIELDS}

    def fingerprint(self) -> str:
        """Stable short hash of the model-determining settings (cache keys, skip decision)."""
        blob = json.dumps(self.model_fields_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def train_settings(self) -> TrainSettings:
        from boneflow.train.settings import TrainSettings

        return TrainSettings(
            image_size=self.image_size,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            label_smoothing=self.label_smoothing,
            rotation_degrees=self.rotation_degrees,
            crop_min_area=self.crop_min_area,
            class_weighted=self.class_weighted,
            patience=self.patience,
            seed=self.seed,
            pretrained=self.pretrained,
            weights_path=Path(self.weights_path) if self.weights_path else None,
            compile=self.compile,
            device=self.device,
        )
