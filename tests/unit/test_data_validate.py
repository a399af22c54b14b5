"""Validation on the planted demo set: every defect excluded with its reason, odd encodings kept,
reports relative, the source tree untouched, pixels in a memmap."""

from __future__ import annotations

import json

import numpy as np

from boneflow.demo.dataset import dataset_root
from boneflow.intake.acquire import acquire
from conftest_data import tree_digest


def test_every_planted_defect_gets_its_verdict(demo_validated):
    _, planted, _, validated, _ = demo_validated
    excluded = {e["path"]: e["reason"] for e in validated.report["excluded"]}
    kept = {r.relpath for r in validated.records}
    for d in planted["defects"]:
        if d["expect"] == "kept":
            assert d["path"] in kept, d
        else:
            assert excluded.get(d["path"]) == d["expect"].split(":", 1)[1], d
    reasons = validated.report["counts"]["by_reason"]
    assert all(
        reasons[r] == 1
        for r in ("zero_byte", "not_an_image", "truncated", "decompression_bomb", "too_small", "undecodable")
    )
    assert len(excluded) == 6  # nothing else was thrown away


def test_converted_modes_are_reported(demo_validated):
    _, _, _, validated, _ = demo_validated
    modes = {c["from_mode"] for c in validated.report["converted"]}
    assert {"CMYK", "RGBA", "P", "I;16", "RGB"} <= modes


def test_report_paths_relative_and_counts_add_up(demo_validated):
    path, planted, _, validated, _ = demo_validated
    report = json.loads((validated.workdir / "cleaning_report.json").read_text())
    assert all(not e["path"].startswith("/") and (dataset_root(path) / e["path"]).exists() for e in report["excluded"])
    per = report["counts"]["by_split_class"]
    assert sum(v["kept"] + v["excluded"] for s in per.values() for v in s.values()) == report["counts"]["images"]
    assert report["empty_folders"] == planted["empty_folders"]
    assert report["stray_files"] == planted["stray_files"] and "extras" in report["stray_folders"]


def test_source_tree_bytes_unchanged(demo_validated):
    path, _, before, _, _ = demo_validated
    assert tree_digest(path) == before


def test_fingerprint_equals_acquire_fingerprint(demo_validated):
    path, _, _, validated, _ = demo_validated
    version = acquire(data_dir=path, kaggle_handle="x/y").version
    assert validated.fingerprint == version.fingerprint
    assert validated.report["file_count"] == version.file_count


def test_pixels_memmap_rows_match_records(demo_validated):
    _, _, _, validated, _ = demo_validated
    pixels = np.load(validated.pixels_path, mmap_mode="r")
    assert isinstance(pixels, np.memmap) and pixels.shape == (len(validated.records), 64, 64)
    assert pixels.dtype == np.uint8 and (pixels.reshape(len(pixels), -1).max(axis=1) > 50).all()
    assert validated.hashes.shape == (len(validated.records), 5, 4) and validated.hashes.dtype == np.uint64
