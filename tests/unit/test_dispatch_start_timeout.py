"""`dispatch_start_timeout`: bounded, not part of the model's identity, and a CLI flag."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from boneflow.config import RetrainConfig
from flows.cli import app


def test_default_and_bounds():
    assert RetrainConfig().dispatch_start_timeout == 1800
    for bad in (9, 86401):
        with pytest.raises(ValidationError, match="dispatch_start_timeout"):
            RetrainConfig(dispatch_start_timeout=bad)


def test_changing_it_is_not_a_different_model():
    assert RetrainConfig(dispatch_start_timeout=40).fingerprint() == RetrainConfig().fingerprint()


def test_cli_flag_out_of_bounds_names_the_flag():
    result = CliRunner().invoke(app, ["run", "--dispatch", "deployment", "--dispatch-start-timeout", "5"])
    assert result.exit_code == 2
    assert "--dispatch-start-timeout" in result.output and "greater than or equal to 10" in result.output
