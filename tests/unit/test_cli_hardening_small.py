"""Smaller hardening items, each at its boundary: gc's grace period, demo-data's size, predict
given a folder or a FIFO, the out-of-space error, and the exit code of a run whose store
objects vanished under it."""

from __future__ import annotations

import errno
import json
import os

import pytest
from typer.testing import CliRunner

from boneflow.cli.gc import MAX_GRACE_HOURS
from boneflow.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    "hours,code",
    [
        ("inf", 2),
        ("nan", 2),
        ("-1", 2),
        ("-0.001", 2),
        (str(MAX_GRACE_HOURS + 1), 2),
        (str(MAX_GRACE_HOURS), 0),
        ("0", 0),
    ],
)
def test_gc_grace_hours_is_a_finite_number_of_hours(tmp_path, hours, code):
    result = runner.invoke(
        app, ["gc", "--store", str(tmp_path), "--skip-work-dir", "--dry-run", "--grace-hours", hours]
    )
    assert result.exit_code == code, result.output
    if code:
        assert "--grace-hours" in result.output and "Traceback" not in result.output


def test_demo_data_n_has_an_upper_bound(tmp_path):
    from boneflow.cli.data import MAX_DEMO_IMAGES

    result = runner.invoke(app, ["demo-data", str(tmp_path / "d"), "--n", str(MAX_DEMO_IMAGES + 1)])
    assert result.exit_code == 2 and "--n" in result.output and not (tmp_path / "d").exists()
    assert "100000" in result.output  # the limit is named


def test_predict_says_what_a_folder_or_a_fifo_is(tmp_path, monkeypatch):
    from boneflow.demo.store import write_demo_store

    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    write_demo_store(str(tmp_path / "store"), image_size=48, seed=0)
    folder, fifo = tmp_path / "scans", tmp_path / "pipe"
    folder.mkdir()
    os.mkfifo(fifo)
    result = runner.invoke(
        app, ["predict", str(folder), str(fifo), str(tmp_path / "gone.png"), "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 2
    lines = {json.loads(x)["path"]: json.loads(x)["error"] for x in result.stdout.strip().splitlines()}
    assert "a folder, not an image file" in lines[str(folder)]
    assert "not a regular file (a FIFO" in lines[str(fifo)]
    assert "no such file" in lines[str(tmp_path / "gone.png")]


def test_a_full_disk_names_the_file_being_written(tmp_path):
    from boneflow.atomic import atomic_output
    from boneflow.cli.errors import exit_code_for, message_for
    from boneflow.errors import OutOfSpaceError

    target = tmp_path / "store" / "runs" / "model.safetensors"
    with pytest.raises(OutOfSpaceError) as caught, atomic_output(target) as fh:
        fh.write(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")  # what write(2) says: no file name
    assert str(target) in message_for(caught.value) and "MiB free" in str(caught.value)
    assert exit_code_for(caught.value) == 2 and caught.value.errno == errno.ENOSPC
    assert not target.exists() and list(target.parent.iterdir()) == []  # no temp file left
    with pytest.raises(OSError, match="Permission") as other, atomic_output(target):
        raise PermissionError(errno.EACCES, "Permission denied")  # other OS errors pass unchanged
    assert not isinstance(other.value, OutOfSpaceError)


def test_a_run_whose_store_objects_vanish_exits_4_not_2(capsys):
    from prefect.states import Failed

    from boneflow.config import RetrainConfig
    from boneflow.store.errors import ObjectNotFoundError, StoreError
    from flows.cli_run import EXIT_STORE_CHANGED, _summary

    config = RetrainConfig()
    gone = Failed(data=ObjectNotFoundError("'runs/x/checkpoints/epoch-0002.pt' is not in store /s."))
    assert _summary(gone, config) == EXIT_STORE_CHANGED == 4
    assert "boneflow gc" in capsys.readouterr().err
    assert _summary(Failed(data=StoreError("bad store URL")), config) == 2  # a store error you fix stays 2
