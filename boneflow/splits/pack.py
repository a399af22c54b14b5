"""Packing (docs/ARCHITECTURE.md, "Duplicates and splits": what a pack holds), copied row by row
from validation's pixels.npy (no second decode, bounded memory) into `datasets/<fingerprint>/<size>/`;
a folder whose manifest matches `pack_settings` and whose files are intact is reused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boneflow import atomic
from boneflow.duplicates.leakage import LeakageAudit
from boneflow.errors import BoneflowError
from boneflow.hashing import sha256_file
from boneflow.intake.layout import CLASSES, SPLITS
from boneflow.intake.npyrows import copy_rows
from boneflow.intake.validate import ValidatedDataset
from boneflow.settings import DataSettings, GatePolicy
from boneflow.splits.packed import SplitArrays
from boneflow.splits.plan import SplitPlan, plan_splits

PACKED_SPLITS = (*SPLITS, "test_clean", "official_test")  # every pack holds all of them
MANIFEST = "manifest.json"
SPLITS_FILE = "splits.json"
FORMAT_VERSION = 2  # 2: split policy, duplicate groups, official_test, splits.json


class PackedDataError(BoneflowError):
    """A packed dataset folder is missing files or does not match its manifest."""


@dataclass
class PackedDataset:
    """A packed folder read back: satisfies `PackedSplits`, its arrays memory-mapped."""

    dir: Path
    size: int
    classes: tuple[str, ...]
    fingerprint: str
    manifest: dict = field(default_factory=dict)

    def split_names(self) -> tuple[str, ...]:
        return PACKED_SPLITS

    def split(self, name: str) -> SplitArrays:
        if name not in self.split_names():
            raise KeyError(f"unknown split {name!r}; this packed dataset holds {self.split_names()}")
        images = np.load(self.dir / f"{name}_images.npy", mmap_mode="r")
        labels = np.load(self.dir / f"{name}_labels.npy")
        paths = json.loads((self.dir / f"{name}_paths.json").read_text())
        return SplitArrays(images, labels, paths)


def _reusable(out_dir: Path, expect: dict) -> PackedDataset | None:
    if not (out_dir / MANIFEST).is_file():
        return None
    try:
        packed = load_packed(out_dir, verify=True)
    except PackedDataError:
        return None
    return packed if packed_matches(packed.manifest, expect) else None


def pack_settings(
    *,
    fingerprint: str,
    size: int,
    min_side: int,
    leak_max_distance: int,
    split_policy: str,
    min_gate_n: int,
    seed: int,
    max_bytes: int | None = None,
    folds: int = 1,
) -> dict:
    """What a packed folder must match to be reused (also checked on the stored copy)."""
    return {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "size": size,
        "min_side": min_side,
        "leak_max_distance": leak_max_distance,
        "max_bytes": max_bytes,
        "split_policy_requested": split_policy,
        "min_gate_n": min_gate_n,
        "split_seed": seed,
        "folds": folds,
    }


def packed_matches(manifest: dict, expect: dict) -> bool:
    """Whether a packed folder's manifest was made with these settings."""
    return all(manifest.get(k) == v for k, v in expect.items())


def pack_dataset(
    validated: ValidatedDataset,
    audit: LeakageAudit,
    *,
    out_dir: Path,
    split_policy: str = DataSettings.split_policy,
    min_gate_n: int = GatePolicy.min_n,
    seed: int = 0,
    folds: int = 1,
) -> PackedDataset:
    """Plan the splits (whole duplicate groups per split, and the cross-fitting folds) and pack
    them into `out_dir`."""
    out_dir = Path(out_dir)
    expect = pack_settings(
        fingerprint=validated.fingerprint,
        size=validated.pack_size,
        min_side=validated.min_side,
        leak_max_distance=audit.report["max_distance"],
        split_policy=split_policy,
        min_gate_n=min_gate_n,
        seed=seed,
        max_bytes=validated.report.get("settings", {}).get("max_bytes"),
        folds=folds,
    )
    if (reused := _reusable(out_dir, expect)) is not None:
        return reused
    if audit.groups is None:
        raise PackedDataError(
            "the leakage audit carries no duplicate groups; run audit_leakage in this process before packing"
        )
    plan = plan_splits(validated, audit.groups, policy=split_policy, min_gate_n=min_gate_n, seed=seed, folds=folds)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = _write_splits(validated, plan, out_dir)
    return _finish(validated, plan, out_dir, expect, info)


def _write_splits(validated: ValidatedDataset, plan: SplitPlan, out_dir: Path) -> dict:
    """Every split's arrays and paths, and splits.json; returns {split: {n, by_class}}."""
    (out_dir / SPLITS_FILE).write_text(json.dumps(plan.to_json(), indent=1))
    splits_info = {}
    for name in PACKED_SPLITS:
        recs = sorted((validated.records[i] for i in plan.members[name]), key=lambda r: r.relpath)
        copy_rows(validated.pixels_path, out_dir / f"{name}_images.npy", [r.row for r in recs])
        labels = np.array([r.label for r in recs], dtype=np.int64)
        np.save(out_dir / f"{name}_labels.npy", labels)
        (out_dir / f"{name}_paths.json").write_text(json.dumps([r.relpath for r in recs]))
        splits_info[name] = {"n": len(recs), "by_class": {c: int((labels == k).sum()) for k, c in enumerate(CLASSES)}}
    return splits_info


def _finish(validated: ValidatedDataset, plan: SplitPlan, out_dir: Path, expect: dict, info: dict) -> PackedDataset:
    for report in ("cleaning_report.json", "leakage_report.json"):
        src_report = validated.workdir / report
        if src_report.is_file() and src_report.resolve() != (out_dir / report).resolve():
            shutil.copyfile(src_report, out_dir / report)
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(out_dir.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        **expect,
        "classes": list(CLASSES),
        "split_policy": plan.summary(),
        "contamination": plan.contamination,
        "splits": info,
        "files": files,
    }
    # The manifest appears last and whole: its presence means "complete".
    atomic.write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2))
    return PackedDataset(out_dir, validated.pack_size, tuple(CLASSES), validated.fingerprint, manifest)


def load_packed(dir: Path, *, verify: bool = False) -> PackedDataset:
    """Open a packed folder: checks the manifest, every split's files and their shapes
    (and every file's sha256 when `verify`). Raises PackedDataError naming what is wrong."""
    dir = Path(dir)
    try:
        manifest = json.loads((dir / MANIFEST).read_text())
        size = int(manifest["size"])
        fingerprint = manifest["fingerprint"]
        splits = manifest["splits"]
        version = manifest.get("format_version")
    except FileNotFoundError:
        raise PackedDataError(
            f"{dir / MANIFEST}: missing. {dir} is not a complete packed dataset; "
            f"re-run packing (boneflow run) to rebuild it."
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PackedDataError(
            f"{dir / MANIFEST}: unreadable or incomplete ({exc}); delete {dir} and re-run packing."
        ) from exc
    if version != FORMAT_VERSION:
        raise PackedDataError(
            f"{dir / MANIFEST}: format_version {version}, this boneflow reads packs of format "
            f"{FORMAT_VERSION} only; delete {dir} and re-run packing."
        )
    for name in PACKED_SPLITS:
        n = splits.get(name, {}).get("n")
        img_file, lab_file = dir / f"{name}_images.npy", dir / f"{name}_labels.npy"
        try:
            images = np.load(img_file, mmap_mode="r")
            labels = np.load(lab_file, mmap_mode="r")
        except FileNotFoundError as exc:
            raise PackedDataError(
                f"{exc.filename}: missing from packed dataset {dir}; delete the folder and re-run packing."
            ) from None
        except (ValueError, OSError) as exc:
            raise PackedDataError(f"{dir}/{name}_*.npy: corrupt ({exc}); delete {dir} and re-run packing.") from exc
        if images.dtype != np.uint8 or images.shape != (n, size, size) or labels.shape != (n,):
            raise PackedDataError(
                f"{img_file}: shape {images.shape} {images.dtype} / labels "
                f"{labels.shape}, manifest says ({n}, {size}, {size}) uint8; delete "
                f"{dir} and re-run packing."
            )
    if verify:
        for fname, meta in manifest.get("files", {}).items():
            path = dir / fname
            if not path.is_file() or sha256_file(path) != meta["sha256"]:
                raise PackedDataError(
                    f"{path}: missing or sha256 differs from {dir / MANIFEST}; delete {dir} and re-run packing."
                )
    return PackedDataset(dir, size, tuple(manifest.get("classes", CLASSES)), fingerprint, manifest)
