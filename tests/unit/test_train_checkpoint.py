"""Atomic checkpoint files: naming, pruning, and skipping incomplete ones."""

from __future__ import annotations

import pytest
import torch

from boneflow.train.checkpoint import latest_checkpoint, list_checkpoints, save_checkpoint


def _state(epoch: int) -> dict:
    return {
        "model": {"w": torch.full((3,), float(epoch))},
        "optimizer": {},
        "scheduler": {},
        "epoch": epoch,
        "settings": {"seed": 0},
        "history": [{"epoch": e} for e in range(1, epoch + 1)],
    }


def test_writes_named_files_keeps_last_two_and_no_temp_files(tmp_path):
    for epoch in range(1, 5):
        save_checkpoint(_state(epoch), tmp_path)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.pt", "epoch-0004.pt"]
    path, state = latest_checkpoint(tmp_path)
    assert path.name == "epoch-0004.pt" and torch.equal(state["model"]["w"], torch.full((3,), 4.0))


def test_truncated_latest_falls_back_to_previous(tmp_path):
    save_checkpoint(_state(1), tmp_path)
    latest = save_checkpoint(_state(2), tmp_path)
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    path, state = latest_checkpoint(tmp_path)
    assert path.name == "epoch-0001.pt" and state["epoch"] == 1


def test_stray_temp_file_and_foreign_file_are_ignored(tmp_path):
    save_checkpoint(_state(1), tmp_path)
    (tmp_path / ".epoch-0002.pt.tmp-123").write_bytes(b"half written")
    torch.save({"not": "ours"}, tmp_path / "epoch-0003.pt")
    path, state = latest_checkpoint(tmp_path)
    assert path.name == "epoch-0001.pt"


def test_empty_or_missing_directory_has_no_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "nope") is None


def test_a_crash_while_saving_keeps_the_previous_checkpoint_and_no_temp(tmp_path, monkeypatch):
    save_checkpoint(_state(1), tmp_path)

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"PK half a zip")
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(_state(2), tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001.pt"]
    assert latest_checkpoint(tmp_path)[1]["epoch"] == 1
