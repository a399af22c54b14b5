"""Acquisition and layout: kagglehub's real cache path offline, the unreachable error, layout errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from boneflow.data.acquire import AcquireError, DatasetVersion, acquire, dataset_fingerprint
from boneflow.data.layout import CLASSES, SPLITS, LayoutError, scan_layout

NEST = "Bone_Fracture_Binary_Classification"


def make_tree(root: Path, *, skip: set[str] = frozenset()) -> Path:
    for s in SPLITS:
        for c in CLASSES:
            if s in skip or f"{s}/{c}" in skip:
                continue
            (root / s / c).mkdir(parents=True, exist_ok=True)
            (root / s / c / "a.jpg").write_bytes(f"{s}{c}".encode())
    return root


def test_doubly_nested_kaggle_layout_is_found(tmp_path):
    inner = make_tree(tmp_path / NEST / NEST)
    got = acquire(data_dir=tmp_path, kaggle_handle="unused/unused")
    assert got.root == inner
    assert got.version.source == "local" and got.version.file_count == 6
    assert got.version.fingerprint == dataset_fingerprint(inner)[0]


def test_missing_split_is_named(tmp_path):
    make_tree(tmp_path, skip={"val"})
    with pytest.raises(LayoutError, match=r"val/") as info:
        acquire(data_dir=tmp_path, kaggle_handle="x/y")
    assert str(tmp_path) in str(info.value)


def test_missing_class_is_named(tmp_path):
    make_tree(tmp_path, skip={"test/fractured"})
    with pytest.raises(LayoutError, match=r"test/fractured/"):
        acquire(data_dir=tmp_path, kaggle_handle="x/y")


def test_no_splits_anywhere_says_where_it_looked(tmp_path):
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"No folder with train/val/test") as info:
        acquire(data_dir=tmp_path, kaggle_handle="x/y")
    assert "photos" in str(info.value)


def test_fingerprint_changes_with_content_and_name(tmp_path):
    root = make_tree(tmp_path / "d")
    first = dataset_fingerprint(root)[0]
    (root / "train" / "fractured" / "a.jpg").write_bytes(b"changed")
    second = dataset_fingerprint(root)[0]
    (root / "train" / "fractured" / "a.jpg").rename(root / "train" / "fractured" / "b.jpg")
    assert len({first, second, dataset_fingerprint(root)[0]}) == 3


def test_stray_and_empty_are_listed(tmp_path):
    root = make_tree(tmp_path)
    (root / "notes.txt").write_text("x")
    (root / "train" / "fractured" / "sub").mkdir()
    (root / "extras").mkdir()
    layout = scan_layout(root)
    assert "notes.txt" in layout.stray_files
    assert {"extras", "train/fractured/sub"} <= set(layout.stray_folders)
    assert {"extras", "train/fractured/sub"} <= set(layout.empty_folders)
    assert len(layout.entries) == 6


def test_versioned_handle_is_served_from_kagglehub_cache_offline(tmp_path, monkeypatch):
    # kagglehub 1.0.3 layout: <cache>/datasets/<owner>/<name>/versions/<N>/ and the completion
    # marker <cache>/datasets/<owner>/<name>/<N>.complete. A resolver that touched the network
    # would fail here: the API endpoint is pointed at a closed local port.
    cache = tmp_path / "kh"
    folder = cache / "datasets" / "bmadushanirodrigo" / "fracture-multi-region-x-ray-data" / "versions" / "2"
    inner = make_tree(folder / NEST / NEST)
    (folder.parent.parent / "2.complete").write_text("")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")  # http://localhost:7777: nothing listens
    got = acquire(data_dir=None, kaggle_handle="bmadushanirodrigo/fracture-multi-region-x-ray-data/versions/2")
    assert got.root == inner
    assert got.version.source == "kaggle" and got.version.version == "2" and got.version.file_count == 6
    assert DatasetVersion.from_dict(got.version.to_dict()) == got.version


def test_unversioned_handle_without_network_gives_the_data_dir_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kh"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    started = time.perf_counter()
    with pytest.raises(AcquireError, match=r"--data-dir") as info:
        acquire(
            data_dir=None, kaggle_handle="bmadushanirodrigo/fracture-multi-region-x-ray-data", retries=2, backoff_s=0.01
        )
    assert "2 times" in str(info.value) and "unreachable" in str(info.value)
    assert time.perf_counter() - started < 20
