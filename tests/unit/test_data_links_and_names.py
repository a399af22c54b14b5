"""Dataset folders with symlinks, loops, undecodable names, a class with no images, and a 1 GB
file: each reported by name in cleaning_report.json, none followed out of the root, no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from boneflow.intake.acquire import acquire
from boneflow.intake.layout import CLASSES, SPLITS, LayoutError, check_classes_present, scan_layout
from boneflow.intake.validate import validate_dataset
from conftest_data import gradient


def _tree(root: Path, per_class: int = 2) -> Path:
    for split in SPLITS:
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(gradient(40 + i, 40)).save(folder / f"{split}-{cls[:3]}-{i}.png")
    return root


def _validate(data_dir: Path, tmp_path: Path, **kw):
    return validate_dataset(
        acquire(data_dir=data_dir, kaggle_handle="").root,
        workdir=tmp_path / "work",
        pack_size=32,
        min_side=16,
        workers=1,
        **kw,
    )


def _skipped(validated) -> dict[str, dict]:
    report = json.loads((validated.workdir / "cleaning_report.json").read_text())
    assert report["counts"]["skipped"] == len(report["skipped"])
    return {s["path"]: s for s in report["skipped"]}


def test_symlinks_out_of_the_root_are_reported_not_followed(tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    Image.fromarray(gradient(40, 40)).save(outside / "x.png")
    real = _tree(tmp_path / "real")
    os.symlink(outside / "x.png", real / "train" / "fractured" / "link.png")
    os.symlink(outside, real / "val" / "extra")
    data_dir = tmp_path / "data"
    os.symlink(real, data_dir)  # the root itself may be a symlink

    validated = _validate(data_dir, tmp_path)
    paths = {r.relpath for r in validated.records}
    assert "train/fractured/link.png" not in paths and len(paths) == 12
    skipped = _skipped(validated)
    assert skipped["train/fractured/link.png"]["reason"] == "symlink_outside_root"
    assert "symlink train/fractured/link.png points to" in skipped["train/fractured/link.png"]["detail"]
    assert skipped["val/extra"]["reason"] == "symlink_outside_root"
    assert not any("secret" in f for f in validated.file_hashes)


def test_a_symlinked_class_folder_inside_the_root_is_followed(tmp_path):
    root = _tree(tmp_path / "d")
    pool = root / "pool" / "fractured"
    pool.parent.mkdir()
    (root / "train" / "fractured").rename(pool)
    os.symlink("../pool/fractured", root / "train" / "fractured")

    layout = scan_layout(root)
    train_fractured = [e.relpath for e in layout.entries if e.split == "train" and e.label == 1]
    assert train_fractured == ["train/fractured/train-fra-0.png", "train/fractured/train-fra-1.png"]
    assert layout.skipped == [] and "pool" in layout.stray_folders
    validated = _validate(root, tmp_path)
    assert validated.fingerprint == acquire(data_dir=root, kaggle_handle="").version.fingerprint


def test_a_class_folder_linked_out_of_the_root_is_named_and_a_missing_class_stops(tmp_path):
    root = _tree(tmp_path / "d")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for split in SPLITS:  # every fractured folder lives outside: no fractured image is usable
        (root / split / "fractured").rename(elsewhere / split)
        os.symlink(elsewhere / split, root / split / "fractured")
    with pytest.raises(LayoutError, match="no 'fractured' images in the whole dataset"):
        _validate(root, tmp_path)
    report = json.loads((tmp_path / "work" / "cleaning_report.json").read_text())
    assert {s["path"] for s in report["skipped"]} == {f"{s}/fractured" for s in SPLITS}


def test_a_symlink_loop_is_reported(tmp_path):
    root = _tree(tmp_path / "d")
    os.symlink("..", root / "train" / "fractured" / "up")
    layout = scan_layout(root)
    assert [(s["path"], s["reason"]) for s in layout.skipped] == [("train/fractured/up", "symlink_loop")]


def test_a_non_utf8_file_name_is_reported_not_a_traceback(tmp_path):
    root = _tree(tmp_path / "d")
    folder = os.fsencode(root / "train" / "fractured")
    with open(folder + b"/\xff\xfe.png", "wb") as fh:
        Image.fromarray(gradient(40, 40)).save(fh, "PNG")
    validated = _validate(root, tmp_path)
    skipped = _skipped(validated)
    assert skipped["train/fractured/\\xff\\xfe.png"]["reason"] == "non_utf8_name"
    json.dumps(validated.report)  # the report stays writable as JSON


def test_a_1gb_sparse_file_is_too_large_without_being_held_in_memory(tmp_path):
    root = _tree(tmp_path / "d")
    with open(root / "train" / "fractured" / "huge.png", "wb") as fh:
        fh.truncate(2**30)
    validated = validate_dataset(root, workdir=tmp_path / "work", pack_size=32, min_side=16, workers=1)
    assert validated.worker_peak_rss_mb < 300, validated.worker_peak_rss_mb  # it read 1 GB before
    excluded = {e["path"]: e for e in validated.report["excluded"]}
    assert excluded["train/fractured/huge.png"]["reason"] == "too_large"
    assert validated.report["counts"]["by_reason"]["too_large"] == 1
    assert validated.report["settings"]["max_bytes"] == 64 * 2**20


def test_the_size_limit_is_configurable(tmp_path):
    root = _tree(tmp_path / "d", per_class=1)
    validated = validate_dataset(
        root, workdir=tmp_path / "work", pack_size=32, min_side=16, workers=1, max_bytes=10_000_000
    )
    assert validated.report["settings"]["max_bytes"] == 10_000_000 and len(validated.records) == 6
    with pytest.raises(LayoutError):  # 1 byte: every image too large, so no class has images
        validate_dataset(root, workdir=tmp_path / "w2", pack_size=32, min_side=16, workers=1, max_bytes=1)


def test_check_classes_present_names_class_and_split():
    check_classes_present({"train": {"fractured": 3, "not fractured": 1}})
    with pytest.raises(LayoutError) as info:
        check_classes_present(
            {
                "train": {"fractured": 3, "not fractured": 1},
                "val": {"fractured": 0, "not fractured": 2},
                "test": {"not fractured": 5},
            }
        )
    message = str(info.value)
    assert "no 'fractured' images in val" in message and "no 'fractured' images in test" in message
    assert "train" not in message.split(".")[0]


def test_a_size_limit_above_the_default_reaches_the_decoder(tmp_path):
    # A file just over the 64 MiB default: kept at a limit of exactly its size, too_large one byte below.
    root = _tree(tmp_path / "d", per_class=1)
    big = root / "train" / "fractured" / "big.jpg"
    Image.fromarray(gradient(48, 48)).save(big)
    with open(big, "r+b") as fh:  # bytes after the JPEG's end marker: still a valid image
        fh.truncate(64 * 2**20 + 1024)
    size = big.stat().st_size

    def excluded(max_bytes: int) -> dict:
        validated = validate_dataset(
            root, workdir=tmp_path / f"w{max_bytes}", pack_size=32, min_side=16, workers=1, max_bytes=max_bytes
        )
        return {e["path"]: e["reason"] for e in validated.report["excluded"]}

    assert "train/fractured/big.jpg" not in excluded(size)
    assert excluded(size - 1)["train/fractured/big.jpg"] == "too_large"
