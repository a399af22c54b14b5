"""Leakage audit: near-copies of the same radiograph across train/val/test.

Each kept image carries five 64-bit perceptual hashes (imagehash.phash of the image, its mirror
and its 90/180/270 rotations, computed during validation from the same decode). A pair
(a in an earlier split, b in a later one) is a near-copy when min over transforms t of
Hamming(hash(a), hash_t(b)) <= max_distance; the report names that t. The search is numpy XOR +
popcount over blocks of rows, never a Python loop over pairs.

The leak-free test subset is the test images with no near-copy in train or val.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boneflow.data.layout import SPLITS
from boneflow.data.validate import HASH_TRANSFORMS, ValidatedDataset

_BLOCK = 512  # rows of `a` per block: 512 x N_b x 5 uint64 stays a few tens of MB


@dataclass
class LeakageAudit:
    report: dict
    leakfree_test: list[str]  # relpaths of test images with no near-copy in train/val
    report_path: Path | None = None


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def near_pairs(hashes_a: np.ndarray, hashes_b: np.ndarray, *, max_distance: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance, transform index) of pairs with min_t d(a_i identity, b_j transform t) <= max_distance.
    `hashes_a`: uint64 [Na, T] (column 0 used), `hashes_b`: uint64 [Nb, T]."""
    out_i, out_j, out_d, out_t = [], [], [], []
    if len(hashes_a) == 0 or len(hashes_b) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    for start in range(0, len(hashes_a), _BLOCK):
        block = hashes_a[start:start + _BLOCK, 0]
        dist = _popcount(block[:, None, None] ^ hashes_b[None, :, :])  # [blk, Nb, T]
        best_t = dist.argmin(axis=2)
        best = np.take_along_axis(dist, best_t[..., None], axis=2)[..., 0]
        ii, jj = np.nonzero(best <= max_distance)
        out_i.append(ii + start)
        out_j.append(jj)
        out_d.append(best[ii, jj].astype(np.int64))
        out_t.append(best_t[ii, jj].astype(np.int64))
    return tuple(np.concatenate(x) for x in (out_i, out_j, out_d, out_t))  # type: ignore[return-value]


def audit_leakage(validated: ValidatedDataset, *, max_distance: int = 4) -> LeakageAudit:
    """Find cross-split near-copies; write `validated.workdir/leakage_report.json`."""
    by_split = {s: [k for k, r in enumerate(validated.records) if r.split == s] for s in SPLITS}
    pairs = []
    counts = {}
    for ai, split_a in enumerate(SPLITS):
        for split_b in SPLITS[ai + 1:]:
            idx_a, idx_b = by_split[split_a], by_split[split_b]
            ii, jj, dd, tt = near_pairs(validated.hashes[idx_a], validated.hashes[idx_b],
                                        max_distance=max_distance)
            counts[f"{split_a}-{split_b}"] = int(len(ii))
            for i, j, d, t in zip(ii, jj, dd, tt):
                ra, rb = validated.records[idx_a[i]], validated.records[idx_b[j]]
                pairs.append({"a": ra.relpath, "b": rb.relpath, "split_a": split_a, "split_b": split_b,
                              "same_label": ra.label == rb.label, "distance": int(d),
                              "transform": HASH_TRANSFORMS[t]})
    pairs.sort(key=lambda p: (p["distance"], p["a"], p["b"]))
    test_paths = [validated.records[k].relpath for k in by_split["test"]]
    leaking = {p["b"] for p in pairs if p["split_b"] == "test"}
    leakfree = [p for p in test_paths if p not in leaking]
    report = {
        "method": "imagehash.phash (64-bit) of each kept image vs the identity, mirror and "
                  "90/180/270-degree rotations of the other; Hamming distance",
        "max_distance": max_distance,
        "fingerprint": validated.fingerprint,
        "counts": {"hashed": len(validated.records), "pairs": len(pairs), "pairs_by_splits": counts,
                   "test": len(test_paths), "test_leaking": len(leaking), "test_clean": len(leakfree),
                   "label_conflicts": sum(1 for p in pairs if not p["same_label"])},
        "pairs": pairs,
        "leaking_test": sorted(leaking),
        "leakfree_test": leakfree,
    }
    path = validated.workdir / "leakage_report.json"
    path.write_text(json.dumps(report, indent=2))
    return LeakageAudit(report=report, leakfree_test=leakfree, report_path=path)
