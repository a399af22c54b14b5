"""fetch_dataset never leaves the local packed cache half rewritten: a failed download leaves
the old copy whole, a reader keeps what it opened, a complete copy is not touched."""

from __future__ import annotations

import numpy as np
import pytest

from boneflow.registry.transfer import fetch_dataset, upload_dataset
from boneflow.splits.pack import PackedDataset
from boneflow.store import open_store
from boneflow.store.errors import IntegrityError

FP = "ef" * 32


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


def _pack(folder, value: int) -> PackedDataset:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "a_images.npy", np.full((64, 32, 32), value, np.uint8))
    np.save(folder / "b_labels.npy", np.full(64, value % 2, np.int64))
    (folder / "manifest.json").write_text(f'{{"version": {value}}}')
    return PackedDataset(folder, 64, (), FP)


def _contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_fetch_leaves_the_old_copy_whole(store, tmp_path):
    dest = tmp_path / "cache" / FP / "64"
    upload_dataset(store, _pack(tmp_path / "v1", 1))
    fetch_dataset(store, FP, 64, dest)
    before = _contents(dest)
    # The store now holds another packing of the same data, and its second file is damaged.
    upload_dataset(store, _pack(tmp_path / "v2", 2))
    (store.root / "datasets" / FP / "64" / "b_labels.npy").write_bytes(b"junk")
    with pytest.raises(IntegrityError, match="b_labels.npy"):
        fetch_dataset(store, FP, 64, dest)
    assert _contents(dest) == before  # not a.npy of v2 beside b.npy of v1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["64"]  # no temp folder left behind


def test_a_reader_keeps_its_copy_while_a_new_one_is_renamed_into_place(store, tmp_path):
    dest = tmp_path / "cache" / FP / "64"
    upload_dataset(store, _pack(tmp_path / "v1", 1))
    fetch_dataset(store, FP, 64, dest)
    reading = np.load(dest / "a_images.npy", mmap_mode="r")  # another run is training on it
    upload_dataset(store, _pack(tmp_path / "v2", 2))
    fetch_dataset(store, FP, 64, dest)
    assert int(reading.max()) == 1 and int(reading.min()) == 1
    assert _contents(dest) == _contents(tmp_path / "v2")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["64"]


def test_a_complete_copy_is_used_as_it_is(store, tmp_path):
    dest = tmp_path / "cache" / FP / "64"
    upload_dataset(store, _pack(tmp_path / "v1", 1))
    fetch_dataset(store, FP, 64, dest)
    inodes = {p.name: p.stat().st_ino for p in dest.iterdir()}
    fetch_dataset(store, FP, 64, dest)
    assert {p.name: p.stat().st_ino for p in dest.iterdir()} == inodes


def test_matching_local_files_are_reused_not_downloaded(store, tmp_path):
    dest = tmp_path / "cache" / FP / "64"
    upload_dataset(store, _pack(tmp_path / "v1", 1))
    fetch_dataset(store, FP, 64, dest)
    (dest / "manifest.json").write_text("damaged")
    images_inode = (dest / "a_images.npy").stat().st_ino
    fetch_dataset(store, FP, 64, dest)
    assert (dest / "manifest.json").read_text() == '{"version": 1}'
    assert (dest / "a_images.npy").stat().st_ino == images_inode  # linked into the new copy
