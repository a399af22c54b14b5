"""A folder store never follows a symbolic link out of its root (reads, writes, lists, deletes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boneflow.registry.publish import publish_run
from boneflow.store import LocalStore, StoreError
from boneflow.store.keys import new_run_id


@pytest.fixture()
def elsewhere(tmp_path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.txt").write_text("outside the store")
    return folder


def test_publish_through_a_runs_link_to_outside_is_refused(tmp_path, elsewhere):
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(elsewhere, root / "runs")
    store = LocalStore(root)
    run_id = new_run_id()
    with pytest.raises(StoreError, match=r"symbolic link .*runs.*Remove the link"):
        publish_run(store, run_id, {"report.md": b"hello"}, code_version={})
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.txt"]  # nothing written outside
    with pytest.raises(StoreError, match="leads outside the store"):
        store.list("runs/")


def test_a_file_link_to_outside_is_neither_read_nor_deleted(tmp_path, elsewhere):
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(elsewhere / "secret.txt", root / "champion.json")
    store = LocalStore(root)
    with pytest.raises(StoreError, match="leads outside the store"):
        store.get_bytes("champion.json")
    with pytest.raises(StoreError, match="leads outside the store"):
        store.read_with_etag("champion.json")
    with pytest.raises(StoreError, match="leads outside the store"):
        store.put_bytes("champion.json", b"{}")
    with pytest.raises(StoreError, match="leads outside the store"):
        store.delete("champion.json")
    assert (elsewhere / "secret.txt").read_text() == "outside the store"


def test_links_that_stay_inside_the_root_work(tmp_path):
    root = tmp_path / "store"
    (root / "datasets").mkdir(parents=True)
    os.symlink(root / "datasets", root / "runs")
    store = LocalStore(root)
    store.put_bytes("runs/a.txt", b"1")
    assert store.get_bytes("runs/a.txt") == b"1" and (root / "datasets" / "a.txt").exists()


def test_a_store_root_that_is_itself_a_link_works(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    store = LocalStore(tmp_path / "alias")
    store.put_bytes("champion.json", b"{}")
    assert (real / "champion.json").read_bytes() == b"{}"
