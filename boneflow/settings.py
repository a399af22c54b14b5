"""The stages' settings and the constants they share, declared once; `RetrainConfig` and each
stage's functions take their defaults from here. Standard library only: the training core (GPU
box), the app and `boneflow --help` import it without numpy, PIL or torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from boneflow.errors import GateError

SplitPolicy = Literal["auto", "official", "regroup"]

# Of the 256-bit phash (imagehash hash_size=16); how it was measured: README, "Decisions worth
# knowing" (Leakage hash), and scripts/measure_leakage.py.
LEAK_MAX_DISTANCE = 26


def pack_size_for(image_size: int) -> int:
    """Stored side of packed images for a crop of `image_size`: 8/7 of it (256 for 224), like
    ImageNet's resize-then-crop, so random crops and small rotations stay inside the image."""
    return int(round(image_size * 8 / 7))


WORK_DIR_ENV = "BONEFLOW_WORK_DIR"


def work_root() -> Path:
    """The runs' local scratch space (never the current directory): $BONEFLOW_WORK_DIR or ~/.cache/boneflow."""
    return Path(os.environ.get(WORK_DIR_ENV) or Path.home() / ".cache" / "boneflow")


@dataclass(frozen=True)
class DataSettings:
    min_side: int = 64  # shorter side below this many pixels: excluded as too small
    leak_max_distance: int = LEAK_MAX_DISTANCE  # phash Hamming distance (of 256) still a copy
    split_policy: SplitPolicy = "auto"  # official | regroup | auto (see splits/plan.py)
    workers: int = 0  # decoding processes; 0 = one per CPU core
    max_image_mb: int = 64  # X-ray exports are a few MB; 7000x7000 16-bit pixels are 98 MB raw
    folds: int = 5  # cross-fitting folds under regroup (1: the single 70/10/20 split); splits/plan.py

    @property
    def max_bytes(self) -> int:
        """`max_image_mb` in bytes: the size limit validation applies to each file."""
        return self.max_image_mb * 1024 * 1024


@dataclass(frozen=True)
class GroupingSettings:
    """How copies are recognised (duplicates/grouping.py). Defaults measured on real radiographs."""

    near_max_distance: int = LEAK_MAX_DISTANCE  # of 256 phash bits; the leakage audit's threshold
    rotation_min_corr: float = 0.6  # texture score that makes a rotated copy (copies mostly >= 0.8)
    rotation_max_angle: float = 36.0  # stage-1 turns searched either way (the Kaggle set's: 5-30 degrees)
    candidate_step: float = 6.0  # stage-1 angle grid, degrees (the alignment refines it)
    candidates: int = 8  # stage-1 candidates kept per image, in each direction (fewer split big families)
    candidate_min_corr: float = 0.6  # stage-1 correlation below which a pair is not verified
    any_angle_candidates: int = 6  # any-angle stage-1 candidates per image, each direction (0: small angles only)


@dataclass(frozen=True)
class TrainSettings:
    image_size: int = 224  # side of the crop the network sees; packed images are 8/7 larger
    epochs: int = 12  # maximum epochs; early stopping may end sooner
    batch_size: int = 64  # images per optimizer step
    lr: float = 1e-3  # peak learning rate of the one-cycle schedule
    weight_decay: float = 0.05  # AdamW decoupled weight decay
    label_smoothing: float = 0.05  # softens targets; helps calibration (ECE)
    rotation_degrees: float = 10.0  # training rotation drawn from [-d, d]
    crop_min_area: float = 0.6  # random resized crop covers this much of the image area, at least
    class_weighted: bool = True  # weight the loss by inverse class frequency of the train split
    patience: int = 4  # epochs without val-loss improvement before stopping; 0 = never
    seed: int = 0  # seeds init, data order and augmentation
    pretrained: bool = True  # start from ImageNet weights (local file / hub cache only)
    weights_path: Path | None = None  # explicit .pth for ImageNet weights
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def to_dict(self) -> dict:
        return {**asdict(self), "weights_path": str(self.weights_path) if self.weights_path else None}


# A screening tool's sensitivity target for the operating threshold; its own setting, apart from
# the gate's recall floor (README, "Honest evaluation", item 6).
TARGET_RECALL = 0.90


@dataclass(frozen=True)
class GatePolicy:
    """What the gate demands. These defaults are the production ones: RetrainConfig's gate fields
    (min_gate_n is `min_n`) and the split planner's `min_gate_n` take theirs from here."""

    min_accuracy: float = 0.90  # lowest accuracy on `split` that may be promoted
    min_recall: float = 0.90  # lowest fractured recall (sensitivity) on `split`
    max_regression: float = 0.01  # largest accuracy drop vs the champion on the same split
    split: str = "test_clean"  # which split the gate reads (leak-free test)
    min_n: int = 200  # fewest radiographs (duplicate groups) `split` must hold for the gate to judge at all

    def __post_init__(self):
        for name in ("min_accuracy", "min_recall", "max_regression"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise GateError(f"GatePolicy.{name}={value} must be between 0 and 1.")
        if self.min_n < 0:
            raise GateError(f"GatePolicy.min_n={self.min_n} must be 0 or more.")

    def to_dict(self) -> dict:
        return asdict(self)
