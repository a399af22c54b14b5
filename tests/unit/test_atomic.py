"""boneflow.atomic: a file is either complete or absent, temp files never outlive a write."""

from __future__ import annotations

import os

import pytest

from boneflow import atomic


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_write_creates_folders_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "a" / "b" / "obj.json"
    atomic.write_text(target, "first")
    atomic.write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["obj.json"]
    # Permissions like any other file the user writes (mkstemp would give 0600).
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_error_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "model.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic.atomic_output(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_a_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "champion.json"
    atomic.write_bytes(target, b"old")

    def refuse(*args, **kwargs):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="rename failed"):
        atomic.write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["champion.json"]


def test_atomic_path_accepts_a_file_renamed_onto_the_temp(tmp_path):
    # What boto3's download_file does: it writes its own temp file and renames it to our path.
    target, src = tmp_path / "dl.bin", tmp_path / "elsewhere.part"
    with atomic.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(atomic.TEMP_PREFIX) and tmp.exists()
        src.write_bytes(b"downloaded")
        os.replace(src, tmp)
    assert target.read_bytes() == b"downloaded"
    assert [p.name for p in tmp_path.iterdir()] == ["dl.bin"]


def test_copy_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))  # several copy chunks
    atomic.copy_file(src, tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == src.read_bytes()
