"""Packing: one uint8 [N, S, S] array + int64 labels + paths per split, and a manifest.

Splits: train, val, test (the official one) and test_clean (test minus images with a near-copy
in train or val). Arrays are written row by row from the validation's pixels.npy (no second
decode, bounded memory) and read back memory-mapped by `load_packed`. The folder is meant to
live at `datasets/<fingerprint>/<size>/`; a second `pack_dataset` into a folder whose manifest
matches (fingerprint, size, min_side, leak threshold) and whose files are intact reuses it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from boneflow.data.layout import CLASSES, SPLITS
from boneflow.data.leakage import LeakageAudit
from boneflow.data.npyrows import NpyRows, create_npy
from boneflow.data.validate import ValidatedDataset
from boneflow.errors import BoneflowError
from boneflow.hashing import sha256_file

PACKED_SPLITS = (*SPLITS, "test_clean")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class PackedDataError(BoneflowError):
    """A packed dataset folder is missing files or does not match its manifest."""


@dataclass(frozen=True)
class SplitArrays:
    images: np.ndarray  # uint8 [N, S, S], memory-mapped
    labels: np.ndarray  # int64 [N]
    paths: list[str]  # relpaths under the dataset root


@dataclass
class PackedDataset:
    dir: Path
    size: int
    classes: tuple[str, ...]
    fingerprint: str
    manifest: dict = field(default_factory=dict)

    def split(self, name: str) -> SplitArrays:
        if name not in PACKED_SPLITS:
            raise KeyError(f"unknown split {name!r}; packed splits are {PACKED_SPLITS}")
        images = np.load(self.dir / f"{name}_images.npy", mmap_mode="r")
        labels = np.load(self.dir / f"{name}_labels.npy")
        paths = json.loads((self.dir / f"{name}_paths.json").read_text())
        return SplitArrays(images, labels, paths)


def packed_dir(base: Path, fingerprint: str, size: int) -> Path:
    """Content address of a packed dataset under a local base folder."""
    return Path(base) / "datasets" / fingerprint / str(size)


def _reusable(out_dir: Path, expect: dict) -> PackedDataset | None:
    if not (out_dir / MANIFEST).is_file():
        return None
    try:
        packed = load_packed(out_dir, verify=True)
    except PackedDataError:
        return None
    same = all(packed.manifest.get(k) == v for k, v in expect.items())
    return packed if same else None


def pack_dataset(validated: ValidatedDataset, audit: LeakageAudit, *, out_dir: Path) -> PackedDataset:
    out_dir = Path(out_dir)
    expect = {"format_version": FORMAT_VERSION, "fingerprint": validated.fingerprint,
              "size": validated.pack_size, "min_side": validated.min_side,
              "leak_max_distance": audit.report["max_distance"]}
    if (reused := _reusable(out_dir, expect)) is not None:
        return reused
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = set(audit.leakfree_test)
    members = {s: [r for r in validated.records if r.split == s] for s in SPLITS}
    members["test_clean"] = [r for r in members["test"] if r.relpath in clean]
    size = validated.pack_size
    splits_info = {}
    with NpyRows(validated.pixels_path, mode="rb") as src:
        for name in PACKED_SPLITS:
            recs = sorted(members[name], key=lambda r: r.relpath)
            img_path = out_dir / f"{name}_images.npy"
            create_npy(img_path, (len(recs), size, size), np.uint8)
            with NpyRows(img_path) as dst:
                for row, rec in enumerate(recs):
                    dst.write_row(row, src.read_row(rec.row))
            labels = np.array([r.label for r in recs], dtype=np.int64)
            np.save(out_dir / f"{name}_labels.npy", labels)
            (out_dir / f"{name}_paths.json").write_text(json.dumps([r.relpath for r in recs]))
            splits_info[name] = {"n": len(recs),
                                 "by_class": {c: int((labels == k).sum()) for k, c in enumerate(CLASSES)}}
    for report in ("cleaning_report.json", "leakage_report.json"):
        src_report = validated.workdir / report
        if src_report.is_file() and src_report.resolve() != (out_dir / report).resolve():
            shutil.copyfile(src_report, out_dir / report)
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
             for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**expect, "classes": list(CLASSES), "splits": splits_info, "files": files}
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out_dir / MANIFEST)  # the manifest appears last: its presence means "complete"
    return PackedDataset(out_dir, size, tuple(CLASSES), validated.fingerprint, manifest)


def load_packed(dir: Path, *, verify: bool = False) -> PackedDataset:
    """Open a packed folder: checks the manifest, every split's files and their shapes
    (and every file's sha256 when `verify`). Raises PackedDataError naming what is wrong."""
    dir = Path(dir)
    try:
        manifest = json.loads((dir / MANIFEST).read_text())
        size = int(manifest["size"])
        fingerprint = manifest["fingerprint"]
        splits = manifest["splits"]
    except FileNotFoundError:
        raise PackedDataError(f"{dir / MANIFEST}: missing. {dir} is not a complete packed dataset; "
                              f"re-run packing (boneflow run) to rebuild it.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PackedDataError(f"{dir / MANIFEST}: unreadable or incomplete ({exc}); delete {dir} "
                              f"and re-run packing.") from exc
    for name in PACKED_SPLITS:
        n = splits.get(name, {}).get("n")
        img_file, lab_file = dir / f"{name}_images.npy", dir / f"{name}_labels.npy"
        try:
            images = np.load(img_file, mmap_mode="r")
            labels = np.load(lab_file, mmap_mode="r")
        except FileNotFoundError as exc:
            raise PackedDataError(f"{exc.filename}: missing from packed dataset {dir}; delete the "
                                  f"folder and re-run packing.") from None
        except (ValueError, OSError) as exc:
            raise PackedDataError(f"{dir}/{name}_*.npy: corrupt ({exc}); delete {dir} and re-run "
                                  f"packing.") from exc
        if images.dtype != np.uint8 or images.shape != (n, size, size) or labels.shape != (n,):
            raise PackedDataError(f"{img_file}: shape {images.shape} {images.dtype} / labels "
                                  f"{labels.shape}, manifest says ({n}, {size}, {size}) uint8; delete "
                                  f"{dir} and re-run packing.")
    if verify:
        for fname, meta in manifest.get("files", {}).items():
            path = dir / fname
            if not path.is_file() or sha256_file(path) != meta["sha256"]:
                raise PackedDataError(f"{path}: missing or sha256 differs from {dir / MANIFEST}; "
                                      f"delete {dir} and re-run packing.")
    return PackedDataset(dir, size, tuple(manifest.get("classes", CLASSES)), fingerprint, manifest)
