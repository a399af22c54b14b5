"""One error -> exit-code rule for every `boneflow` command (boneflow/cli/errors.py)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError
from typer.testing import CliRunner

from boneflow.cli.errors import DEBUG_ENV, EXIT_BAD_INPUT, EXIT_ERROR, EXIT_INTERRUPTED
from boneflow.errors import BoneflowError
from boneflow.store.errors import StoreError
from flows.cli import app as boneflow_app

runner = CliRunner()


def _every_command(app, prefix=()):
    """(command path, CommandInfo) for every command registered on `app` and its sub-apps."""
    for info in app.registered_commands:
        yield (*prefix, info.name), info
    for group in app.registered_groups:
        yield from _every_command(group.typer_instance, (*prefix, group.name))


def _fresh_app():
    from boneflow.cli.main import build_app
    from flows.cli_run import run

    return build_app(run=run)  # a new app each call: its commands can be swapped freely


def _raising(error: BaseException):
    def command() -> None:
        raise error

    return command


def test_the_walk_finds_every_command_of_the_console_script():
    paths = {" ".join(path) for path, _ in _every_command(boneflow_app)}
    assert paths == {"run", "audit", "demo-data", "predict", "app", "gc", "bench prep", "bench train", "bench infer"}


def test_every_command_maps_a_boneflow_error_to_exit_2_with_one_line():
    app = _fresh_app()
    commands = list(_every_command(app))
    for _, info in commands:
        info.callback = _raising(StoreError("store s3://b/p is unreachable; check AWS_ENDPOINT_URL."))
    for path, _ in commands:
        result = runner.invoke(app, list(path))
        assert result.exit_code == EXIT_BAD_INPUT, (path, result.output)
        assert result.stderr == "error: store s3://b/p is unreachable; check AWS_ENDPOINT_URL.\n", path
        assert "Traceback" not in result.output


class _Settings(BaseModel):
    epochs: int = Field(1, ge=1)


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (BoneflowError("data/train: missing folder"), EXIT_BAD_INPUT, "error: data/train: missing folder"),
        (FileNotFoundError(2, "No such file or directory", "x.png"), EXIT_BAD_INPUT, "error: x.png: No such file"),
        (PermissionError(13, "Permission denied", "/store"), EXIT_BAD_INPUT, "error: /store: Permission denied"),
        (RuntimeError("boom"), EXIT_ERROR, "error: unexpected RuntimeError: boom (set BONEFLOW_DEBUG=1"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "error: interrupted"),
    ],
)
def test_error_classes_map_to_documented_codes(error, code, message):
    app = _fresh_app()
    dict(_every_command(app))[("gc",)].callback = _raising(error)
    result = runner.invoke(app, ["gc"])
    assert result.exit_code == code and result.stderr.startswith(message), result.output
    assert "Traceback" not in result.output


def test_a_validation_error_names_the_field():
    with pytest.raises(ValidationError) as refused:
        _Settings(epochs=0)
    app = _fresh_app()
    dict(_every_command(app))[("bench", "train")].callback = _raising(refused.value)
    result = runner.invoke(app, ["bench", "train"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.startswith("error: invalid settings: epochs: Input should be greater than or equal to 1")


def test_debug_env_adds_the_traceback(monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "1")
    app = _fresh_app()
    dict(_every_command(app))[("gc",)].callback = _raising(RuntimeError("boom"))
    result = runner.invoke(app, ["gc"])
    assert result.exit_code == EXIT_ERROR and "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr


def test_typer_usage_errors_keep_typers_exit_2():
    result = runner.invoke(boneflow_app, ["gc", "--keep-runs", "-1"])
    assert result.exit_code == 2 and "--keep-runs" in result.output and "Traceback" not in result.output
    result = runner.invoke(boneflow_app, ["no-such-command"])
    assert result.exit_code == 2


def test_real_bad_input_exits_2_from_core_commands(tmp_path):
    """Not stand-ins: the commands' own errors reach the handler."""
    gone = runner.invoke(boneflow_app, ["gc", "--store", str(tmp_path / "nope"), "--skip-work-dir"])
    assert gone.exit_code == 2 and "does not exist" in gone.stderr
    (tmp_path / "data" / "train").mkdir(parents=True)
    prep = runner.invoke(boneflow_app, ["bench", "prep", "--data-dir", str(tmp_path / "data")])
    assert prep.exit_code == 2 and "missing folder" in prep.stderr and "Traceback" not in prep.output
