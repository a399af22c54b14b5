"""Validation (README, "Data checks"): one decode per file, in a process pool, yields its verdict,
packed pixels, perceptual hashes (leakage audit) and grouping thumbnail. Workers return small
arrays in chunks; the parent writes pixels row by row into `workdir/pixels.npy` and never holds
the full-size decodes. The source tree is only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from boneflow.hashing import sha256_file
from boneflow.intake.acquire import fingerprint_from_hashes
from boneflow.intake.decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    REASONS,
    ImageRejected,
    decode_xray,
    read_bounded,
)
from boneflow.intake.layout import CLASSES, SPLITS, check_classes_present, scan_layout
from boneflow.intake.npyrows import NpyRows, copy_rows, create_npy
from boneflow.intake.thumbnails import THUMB_SIDE, group_thumbnail
from boneflow.settings import DataSettings

# Order of the hash columns; the leakage report names the matching transform with these.
HASH_TRANSFORMS = ("identity", "mirror", "rot90", "rot180", "rot270")
HASH_SIZE = 16  # imagehash.phash hash_size: HASH_SIZE**2 = 256 bits per hash
HASH_BITS = HASH_SIZE * HASH_SIZE
HASH_WORDS = HASH_BITS // 64
HASH_KIND = f"phash-{HASH_SIZE * HASH_SIZE} (= imagehash.phash(hash_size={HASH_SIZE}); variants from one DCT)"
_CHUNK = 16  # files per task: big enough to amortise IPC, small enough to keep results ~1 MB


@dataclass(frozen=True)
class KeptRecord:
    relpath: str
    split: str
    label: int
    row: int  # row of this image in pixels.npy / hashes
    source: str = ""  # "<format> <width>x<height>": tells the merged source sets apart


@dataclass
class ValidatedDataset:
    root: Path
    workdir: Path
    pack_size: int
    fingerprint: str
    report: dict
    records: list[KeptRecord]
    pixels_path: Path  # uint8 [len(records), S, S] .npy, row = record.row
    hashes: np.ndarray  # uint64 [len(records), len(HASH_TRANSFORMS), HASH_WORDS]
    thumbs: np.ndarray  # uint8 [len(records), THUMB_SIDE, THUMB_SIDE], squashed
    min_side: int = DataSettings.min_side
    file_hashes: dict[str, str] = field(default_factory=dict)
    worker_peak_rss_mb: float = 0.0  # largest decoding worker's peak resident set


_HASH_SIDE = HASH_SIZE * 4  # imagehash's highfreq_factor: hash a 64x64 resize
# The first HASH_SIZE rows of the (unnormalised, scipy.fftpack-style) DCT-II matrix: two small
# matrix products give exactly the coefficients the hash uses, without a full DCT or scipy.
_DCT_ROWS = 2.0 * np.cos(
    np.pi * np.arange(HASH_SIZE)[:, None] * (2 * np.arange(_HASH_SIDE)[None, :] + 1) / (2 * _HASH_SIDE)
)


def _words(bits: np.ndarray) -> np.ndarray:
    return np.frombuffer(np.packbits(bits.reshape(-1)).tobytes(), dtype=">u8").astype(np.uint64)


def _hashes(grey) -> np.ndarray:
    """uint64 [len(HASH_TRANSFORMS), HASH_WORDS]: 256-bit perceptual hashes of the image, its
    mirror and rotations, from ONE 64x64 resize and ONE partial 2-D DCT. The identity hash is
    imagehash.phash(hash_size=16) bit for bit (a test checks it). Mirroring multiplies DCT-II
    coefficient k by (-1)^k and a 90-degree turn transposes the block, so mirror and 180 are
    exact, 90/270 within a few bits of hashing the turned image; 1.7 -> 0.3 ms an image against
    five imagehash calls. Why 256 bits: leakage.py."""
    small = np.asarray(grey.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    d = _DCT_ROWS @ small @ _DCT_ROWS.T  # the 16x16 lowest frequencies of the 2-D DCT-II
    sign = (-1.0) ** np.arange(HASH_SIZE)
    variants = (
        d,  # identity
        d * sign[None, :],  # mirror (left-right)
        sign[:, None] * d.T,  # rot90 (counter-clockwise): flip_ud(transpose)
        d * sign[:, None] * sign[None, :],  # rot180
        d.T * sign[None, :],  # rot270: flip_lr(transpose)
    )
    return np.stack([_words(v > np.median(v)) for v in variants])


def _work_chunk(
    jobs: list[tuple[int, str]], pack_size: int, min_side: int, max_pixels: int, max_bytes: int
) -> tuple[list[tuple], float]:
    """Worker: per (index, path), (index, sha256, reject reason | None, detail, info, pixel
    bytes | None, (hashes, grouping thumbnail) | None); plus this worker's peak RSS in MB
    (forkserver workers are not our children, so RUSAGE_CHILDREN cannot see them)."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's own open-time guard agrees with ours
    out: list[tuple[int, str, str | None, str, dict, bytes | None, tuple | None]] = []
    for index, path in jobs:
        try:  # read-only, size checked first: an oversized file is only streamed through sha256
            data = read_bounded(Path(path), max_bytes)
        except ImageRejected as exc:
            out.append((index, sha256_file(Path(path)), exc.reason, exc.detail, {}, None, None))
            continue
        sha = hashlib.sha256(data).hexdigest()
        try:
            pixels, grey, info = decode_xray(
                data, pack_size, min_side=min_side, max_pixels=max_pixels, max_bytes=max_bytes
            )
            out.append((index, sha, None, "", info, pixels.tobytes(), (_hashes(grey), group_thumbnail(grey))))
        except ImageRejected as exc:
            out.append((index, sha, exc.reason, exc.detail, {}, None, None))
        except Exception as exc:  # anything else PIL throws on hostile input is still "undecodable"
            out.append((index, sha, "undecodable", f"{type(exc).__name__}: {exc}", {}, None, None))
    return out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class _Decoded:
    """What the pool returned for every entry (row = entry index), before keeping the good ones."""

    hashes: np.ndarray  # uint64 [entries, len(HASH_TRANSFORMS), HASH_WORDS]
    thumbs: np.ndarray  # uint8 [entries, THUMB_SIDE, THUMB_SIDE]
    verdicts: dict[int, tuple] = field(default_factory=dict)  # entry index -> (reason or None, detail, info)
    file_hashes: dict[str, str] = field(default_factory=dict)  # relpath -> file sha256
    worker_rss: float = 0.0  # largest worker peak RSS (MB)


def _decode_all(
    root: Path,
    entries: list,
    raw_path: Path,
    *,
    workers: int,
    pack_size: int,
    min_side: int,
    max_pixels: int,
    max_bytes: int,
    progress: Callable[[int, int], None] | None,
) -> _Decoded:
    """Decode every entry once in the pool; pixels of kept files go to row `index` of `raw_path`.
    At most 2 chunks per worker are in flight, so results never pile up in the parent."""
    total = len(entries)
    create_npy(raw_path, (total, pack_size, pack_size), np.uint8)
    decoded = _Decoded(
        hashes=np.zeros((total, len(HASH_TRANSFORMS), HASH_WORDS), dtype=np.uint64),
        thumbs=np.zeros((total, THUMB_SIDE, THUMB_SIDE), dtype=np.uint8),
    )
    jobs = [(i, str(root / e.relpath)) for i, e in enumerate(entries)]
    # forkserver: workers start from a clean process, safe even when the caller already runs
    # threads (Prefect, torch); fork from such a parent can deadlock.
    with (
        NpyRows(raw_path) as rows,
        ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver")) as pool,
    ):

        def collect(fut) -> None:
            results, rss = fut.result()
            decoded.worker_rss = max(decoded.worker_rss, rss)
            for index, sha, reason, detail, info, pixels, hashes in results:
                decoded.file_hashes[entries[index].relpath] = sha
                decoded.verdicts[index] = (reason, detail, info)
                if reason is None:
                    rows.write_row(index, np.frombuffer(pixels, dtype=np.uint8))
                    decoded.hashes[index], decoded.thumbs[index] = hashes
                if progress is not None:
                    progress(len(decoded.verdicts), total)  # one verdict per finished file

        pending = set()
        for start in range(0, len(jobs), _CHUNK):
            chunk = jobs[start : start + _CHUNK]
            pending.add(pool.submit(_work_chunk, chunk, pack_size, min_side, max_pixels, max_bytes))
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    collect(fut)
        for fut in pending:
            collect(fut)
    return decoded


def validate_dataset(
    root: Path,
    *,
    workdir: Path,
    pack_size: int,
    min_side: int = DataSettings.min_side,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ValidatedDataset:
    """Decode every image under `root` once; write `workdir/cleaning_report.json` and
    `workdir/pixels.npy`. `workers=0` → one process per CPU. `progress(done, total)` is called
    as files finish. Files over `max_bytes` are excluded as too_large without being decoded.
    Raises LayoutError (after writing the report) when a class has no kept image at all."""
    layout = scan_layout(Path(root))
    root, entries = layout.root, layout.entries
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    limits = {"pack_size": pack_size, "min_side": min_side, "max_pixels": DEFAULT_MAX_PIXELS, "max_bytes": max_bytes}
    raw_path = workdir / "pixels_all.npy"  # row = entry index; compacted to kept rows below
    decoded = _decode_all(root, entries, raw_path, workers=workers or os.cpu_count() or 1, progress=progress, **limits)
    verdicts, file_hashes = decoded.verdicts, decoded.file_hashes
    for rel in layout.stray_files:  # not images of the dataset, but part of its fingerprint
        if (root / rel).is_file():
            file_hashes[rel] = sha256_file(root / rel)

    kept_idx = [i for i in range(len(entries)) if verdicts[i][0] is None]
    pixels_path = workdir / "pixels.npy"
    copy_rows(raw_path, pixels_path, kept_idx)
    raw_path.unlink()
    records = [
        KeptRecord(entries[i].relpath, entries[i].split, entries[i].label, row, _source(verdicts[i][2]))
        for row, i in enumerate(kept_idx)
    ]
    fingerprint = fingerprint_from_hashes(file_hashes)
    report = _cleaning_report(root, layout, entries, verdicts, fingerprint, len(file_hashes), **limits)
    (workdir / "cleaning_report.json").write_text(json.dumps(report, indent=2))
    check_classes_present({"the whole dataset (all splits together)": Counter(CLASSES[r.label] for r in records)})
    return ValidatedDataset(
        root=root,
        workdir=workdir,
        pack_size=pack_size,
        fingerprint=fingerprint,
        report=report,
        records=records,
        pixels_path=pixels_path,
        hashes=decoded.hashes[kept_idx],
        thumbs=decoded.thumbs[kept_idx],
        min_side=min_side,
        file_hashes=file_hashes,
        worker_peak_rss_mb=decoded.worker_rss,
    )


def _source(info: dict) -> str:
    return f"{info.get('format')} {info.get('width')}x{info.get('height')}"


def _cleaning_report(root, layout, entries, verdicts, fingerprint, file_count, **settings) -> dict:
    by_split: dict = defaultdict(lambda: {c: {"kept": 0, "excluded": 0} for c in CLASSES})
    by_reason: Counter = Counter()
    excluded, converted = [], []
    for i, entry in enumerate(entries):
        reason, detail, info = verdicts[i]
        cls = CLASSES[entry.label]
        if reason is None:
            by_split[entry.split][cls]["kept"] += 1
            if info.get("mode") not in ("L", None):
                converted.append({"path": entry.relpath, "from_mode": info["mode"], "format": info["format"]})
        else:
            by_split[entry.split][cls]["excluded"] += 1
            by_reason[reason] += 1
            excluded.append(
                {"path": entry.relpath, "split": entry.split, "class": cls, "reason": reason, "detail": detail}
            )
    n_excluded = len(excluded)
    return {
        "root": str(root),
        "fingerprint": fingerprint,
        "file_count": file_count,
        "settings": settings,
        "counts": {
            "images": len(entries),
            "kept": len(entries) - n_excluded,
            "excluded": n_excluded,
            "skipped": len(layout.skipped),
            "by_reason": {r: by_reason.get(r, 0) for r in REASONS},
            "by_split_class": {s: by_split[s] for s in SPLITS},
        },
        "excluded": excluded,
        "converted": converted,
        "empty_folders": layout.empty_folders,
        "stray_files": layout.stray_files,
        "stray_folders": layout.stray_folders,
        "skipped": layout.skipped,  # never read: symlinks out of the root, loops, non-UTF-8 names
    }
