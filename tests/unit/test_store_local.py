"""LocalStore: atomic writes, listing, conditional puts, and a real multi-process race."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from boneflow.store import ConflictError, LocalStore, ObjectNotFoundError, open_store
from boneflow.store import local as local_module


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def test_put_get_bytes_and_files(store, tmp_path):
    store.put_bytes("runs/a/x.json", b"{}")
    assert store.get_bytes("runs/a/x.json") == b"{}"
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    store.put_file("datasets/f/1/big.bin", src)
    dest = tmp_path / "out" / "deep" / "big.bin"
    store.get_file("datasets/f/1/big.bin", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert store.size("runs/a/x.json") == 2 and store.size("runs/a/y.json") is None
    assert store.size("datasets/f/1/big.bin") == src.stat().st_size
    assert store.size("nope") is None


def test_missing_objects_raise_clear_errors(store, tmp_path):
    with pytest.raises(ObjectNotFoundError, match="'runs/zz' is not in store"):
        store.get_bytes("runs/zz")
    with pytest.raises(ObjectNotFoundError):
        store.get_file("runs/zz", tmp_path / "z")
    assert store.read_with_etag("runs/zz") is None


def test_list_is_recursive_sorted_and_hides_temp_and_lock_files(store):
    for key in ("runs/b/m.json", "runs/a/checkpoints/e1.pt", "runs/a/m.json", "champion.json"):
        store.put_bytes(key, b"1")
    store.put_if("champion.json", b"2", etag=store.read_with_etag("champion.json")[1])
    (store.root / "runs" / "a" / ".tmp-junk").write_bytes(b"half")
    assert store.list("runs/") == ["runs/a/checkpoints/e1.pt", "runs/a/m.json", "runs/b/m.json"]
    assert store.list("runs/a/") == ["runs/a/checkpoints/e1.pt", "runs/a/m.json"]
    assert store.list("runs/a") == ["runs/a/checkpoints/e1.pt", "runs/a/m.json"]
    assert store.list() == ["champion.json", "runs/a/checkpoints/e1.pt", "runs/a/m.json", "runs/b/m.json"]
    assert store.list("nothing/") == []
    assert LocalStore(store.root / "missing").list() == []


def test_crash_during_write_leaves_old_object_and_no_temp(store, monkeypatch):
    store.put_bytes("champion.json", b"old")

    def crash(*args, **kwargs):
        raise OSError("disk died during rename")

    monkeypatch.setattr(local_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        store.put_bytes("champion.json", b"new-content")
    monkeypatch.undo()
    assert store.get_bytes("champion.json") == b"old"
    assert [p.name for p in store.root.iterdir()] == ["champion.json"]


def test_get_file_never_leaves_half_file(store, tmp_path, monkeypatch):
    store.put_bytes("a.bin", b"x" * 1000)
    dest = tmp_path / "dl" / "a.bin"
    monkeypatch.setattr(local_module.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        store.get_file("a.bin", dest)
    monkeypatch.undo()
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_put_if_create_only_then_compare_and_swap(store):
    etag1 = store.put_if("champion.json", b"v1", etag=None)
    with pytest.raises(ConflictError, match="already exists"):
        store.put_if("champion.json", b"v1b", etag=None)
    assert store.read_with_etag("champion.json") == (b"v1", etag1)
    etag2 = store.put_if("champion.json", b"v2", etag=etag1)
    assert etag2 != etag1
    with pytest.raises(ConflictError, match="has changed"):
        store.put_if("champion.json", b"v3", etag=etag1)  # stale etag loses
    assert store.get_bytes("champion.json") == b"v2"
    store.delete("champion.json")
    with pytest.raises(ConflictError, match="missing"):
        store.put_if("champion.json", b"v4", etag=etag2)


def test_file_url_and_plain_path_are_the_same_store(tmp_path):
    a = open_store(str(tmp_path))
    b = open_store(f"file://{tmp_path}")
    a.put_bytes("runs/x/y", b"1")
    assert b.get_bytes("runs/x/y") == b"1"


def _race_worker(root, expected_etag, barrier, results, i):
    store = LocalStore(root)
    barrier.wait()
    try:
        store.put_if("champion.json", f"winner {i}".encode(), etag=expected_etag)
        results.put(("won", i))
    except ConflictError:
        results.put(("lost", i))


@pytest.mark.parametrize("existing", [False, True], ids=["first-champion", "replace-champion"])
def test_racing_processes_exactly_one_wins(tmp_path, existing):
    root = tmp_path / "store"
    store = LocalStore(root)
    etag = store.put_if("champion.json", b"old", etag=None) if existing else None
    ctx = mp.get_context("fork")
    for _round in range(3):
        n = 4
        barrier, results = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_race_worker, args=(root, etag, barrier, results, i)) for i in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in range(n))
        winners = [i for what, i in outcomes if what == "won"]
        assert len(winners) == 1, outcomes
        assert store.get_bytes("champion.json") == f"winner {winners[0]}".encode()
        etag = store.read_with_etag("champion.json")[1]


def test_rewriting_identical_bytes_still_invalidates_a_stale_etag(tmp_path):
    # ABA: a content-hash etag alone would let the stale writer win after someone wrote the
    # same bytes back, and both writers would believe they had promoted.
    store = LocalStore(tmp_path / "store")
    stale = store.put_if("champion.json", b"same", etag=None)
    store.put_if("champion.json", b"same", etag=stale)
    with pytest.raises(ConflictError):
        store.put_if("champion.json", b"other", etag=stale)
