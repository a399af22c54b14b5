"""The frozen values the retrain stages hand to each other, never a loose dict or a path another
stage left on this machine's disk (which stage returns which, and why: docs/ARCHITECTURE.md,
"Retrain, stage by stage"). Plain JSON underneath (`model_dump(mode="json")`): how Prefect
persists them (tasks/results.py) and how they travel to the gpu pool and back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Contract(BaseModel):
    """Frozen, no unknown fields: a stage cannot change what it was handed, and a typo in a
    field name fails where the value is built, not three stages later."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Acquired(Contract):
    """Where the dataset is on this worker and which version it is."""

    root: str
    version: dict[str, Any]  # DatasetVersion.to_dict(): source, handle, version, file_count, fingerprint

    @property
    def fingerprint(self) -> str:
        return str(self.version["fingerprint"])


class ChampionRef(Contract):
    """champion.json as read at the start of a run, with the ETag its promotion must match."""

    run_id: str
    etag: str
    dataset_fingerprint: str | None = None
    config_fingerprint: str | None = None
    record: dict[str, Any] = Field(default_factory=dict)  # the whole champion.json

    def skip_reason(self, *, dataset_fingerprint: str, config_fingerprint: str) -> str | None:
        """Why training can be skipped (same data, same model settings), or None to train."""
        if self.dataset_fingerprint == dataset_fingerprint and self.config_fingerprint == config_fingerprint:
            return f"Data and config equal champion {self.run_id}'s; nothing to train (set force to retrain anyway)."
        return None


class TrainSummary(Contract):
    """What training produced; the model files themselves are in runs/<run_id>/."""

    run_id: str
    dataset_fingerprint: str
    config_fingerprint: str
    best_epoch: int
    epochs_run: int
    resumed_from_epoch: int = 0
    seconds: float
    history: list[dict[str, Any]]  # one row per epoch: epoch, losses, accuracies, seconds
    fold: int | None = None  # cross-fitting: the fold this member never saw (its run_id is the member's)


class Predictions(Contract):
    """One model's per-file results on one split, at its own operating point. A radiograph's
    result is derived from its files' (`groups`, evaluate/radiographs.py): the mean probability
    against `threshold`."""

    paths: list[str]
    labels: list[int]
    predicted: list[int]  # per file, at `threshold`
    probability: list[float]  # calibrated P(fractured)
    groups: list[str] = Field(default_factory=list)  # duplicate group per file (empty: each file its own)
    threshold: float = 0.5  # the operating threshold the decisions were made at
    thresholds: list[float] = Field(default_factory=list)  # per file, when folds decide at their own (cross-fitting)
    folds: list[int] = Field(default_factory=list)  # per file: the fold it was predicted out of (cross-fitting)

    def file_thresholds(self) -> list[float]:
        """The threshold that decided each file."""
        return list(self.thresholds) if self.thresholds else [self.threshold] * len(self.paths)


class Scores(Contract):
    """One model evaluated on every evaluation split of this run's pack."""

    run_id: str  # whose model: the candidate's run or the champion's
    splits: dict[str, dict[str, Any]]  # split -> DESIGN's metrics (metrics.json `splits`)
    predictions: dict[str, Predictions]
    operating_point: dict[str, Any] | None = None  # OperatingPoint.to_meta(); candidate only
    split_policy: dict[str, Any] | None = None  # how the pack was split (pack manifest)
    contamination: dict[str, Any] | None = None  # official test copies (leakage report)


class RunFiles(Contract):
    """A published run: its manifest (size + sha256 per object) and its metrics.json."""

    run_id: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]
