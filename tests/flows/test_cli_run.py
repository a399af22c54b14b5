"""`boneflow run`: the exit codes and messages a user sees (the full run is the benchmark and the
flow tests; here the states are made directly)."""

from __future__ import annotations

import pytest
from prefect.states import Completed, Failed
from typer.testing import CliRunner

from boneflow.config import RetrainConfig
from flows.cli import app
from flows.cli_run import EXIT_REJECTED, _summary

pytestmark = pytest.mark.flows
runner = CliRunner()


def test_missing_data_dir_is_a_clear_error_without_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path / "nope"), "--store", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "--data-dir" in result.output and "not a folder" in result.output
    assert "Traceback" not in result.output


def test_out_of_bounds_setting_names_the_flag(tmp_path):
    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path), "--image-size", "8"])
    assert result.exit_code == 1 and "--image-size" in result.output and "Traceback" not in result.output


def test_exit_codes_by_final_state(capsys):
    config = RetrainConfig(store_url="/tmp/store")
    assert _summary(Completed(name="Skipped", message="same as champion"), config) == 0
    assert _summary(Failed(name="GateRejected", message="Gate rejected: accuracy 0.5 < 0.9"), config) == EXIT_REJECTED
    assert _summary(Failed(message="Flow run encountered an exception: AcquireError: offline"), config) == 1
    err = capsys.readouterr().err
    assert "not promoted" in err and "AcquireError: offline" in err
