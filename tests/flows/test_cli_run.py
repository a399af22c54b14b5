"""`boneflow run`: the exit codes and messages a user sees (the full run is the benchmark and the
flow tests; here the states are made directly)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flow_helpers import task_names_of
from prefect.states import Completed, Failed
from typer.testing import CliRunner

from boneflow.config import RetrainConfig
from flows.cli import app
from flows.cli_run import EXIT_REJECTED, _summary

pytestmark = pytest.mark.flows
runner = CliRunner()


def test_missing_data_dir_is_a_clear_error_without_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path / "nope"), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "--data-dir" in result.output and "not a folder" in result.output
    assert "Traceback" not in result.output


def test_out_of_bounds_setting_names_the_flag(tmp_path):
    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path), "--image-size", "8"])
    assert result.exit_code == 2 and "--image-size" in result.output and "Traceback" not in result.output


def test_exit_codes_by_final_state(capsys):
    config = RetrainConfig(store_url="/tmp/store")
    assert _summary(Completed(name="Skipped", message="same as champion"), config) == 0
    assert _summary(Failed(name="GateRejected", message="Gate rejected: accuracy 0.5 < 0.9"), config) == EXIT_REJECTED
    assert _summary(Failed(message="Flow run encountered an exception: AcquireError: offline"), config) == 1
    err = capsys.readouterr().err
    assert "not promoted" in err and "AcquireError: offline" in err


def test_display_follows_a_real_run_through_the_api(tiny_config):
    """Stages from the running task runs, epochs from the training's progress artifact: the
    display reads Prefect's API during a real in-process run, never its log lines."""
    import io
    import re

    from rich.console import Console
    from rich.progress import Progress

    from flows.cli_progress import RunDisplay
    from flows.retrain import retrain

    config = tiny_config(epochs=3)
    progress = Progress(console=Console(file=io.StringIO(), width=200))
    display = RunDisplay(progress, config.epochs)
    with display:
        state = retrain.with_options(on_running=[display.on_running])(config, return_state=True)
    assert state.is_completed(), state.message
    epochs = progress.tasks[display.epoch_row]
    assert epochs.visible and epochs.completed == 3
    assert re.fullmatch(r"done: 3 epochs, \d+ img/s", epochs.description), epochs.description
    stage = progress.tasks[display.stage_row].description
    done = re.fullmatch(r"(\d+) stages done", stage)
    assert done and int(done.group(1)) >= len(task_names_of(state.state_details.flow_run_id)), stage
    training_tasks = {"fetch_training_data", "fetch_run_checkpoints", "fit_model"}  # in the train subflow
    assert display.stages_seen, "no running stage was ever shown"
    assert set(display.stages_seen) <= task_names_of(state.state_details.flow_run_id) | training_tasks
    assert "train" not in display.stages_seen  # the task run that only waits for the subflow is skipped
    print("stages shown:", display.stages_seen)


def test_run_command_end_to_end_shows_the_epoch_bar_and_exits_0(demo_data, tmp_path):
    args = ["run", "--data-dir", str(demo_data), "--store", str(tmp_path / "store"), "--image-size", "32"]
    args += ["--epochs", "2", "--batch-size", "32", "--no-pretrained", "--workers", "2", "--min-accuracy", "0"]
    args += ["--min-recall", "0", "--max-regression", "1", "--min-gate-n", "0"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "promoted run" in result.stdout and "done: 2 epochs" in result.stdout and "2/2" in result.stdout
    assert "stages done" in result.stdout and "Traceback" not in result.output


def test_a_running_stages_warning_shows_beside_it_on_the_stage_line():
    """A stage that logs a warning (acquire's retry notice) is shown with it while it runs; the
    notice comes from the API's logs, as the display reads everything else."""
    import io
    import time

    from prefect import flow, get_client, get_run_logger, task
    from prefect.context import get_run_context
    from rich.console import Console
    from rich.progress import Progress

    from flows.cli_progress import RunDisplay, read_snapshot

    notice = "Kaggle: attempt 2/3 in 20 s: timed out"
    seen = []

    @task
    def acquire_dataset() -> None:
        get_run_logger().warning(notice)
        flow_run_id = get_run_context().task_run.flow_run_id
        with get_client(sync_client=True) as client:
            for _ in range(120):  # logs reach the API in batches, a few seconds late
                snap = read_snapshot(client, flow_run_id)
                if snap.note:
                    break
                time.sleep(0.5)
        seen.append(snap)

    @flow
    def downloading() -> None:
        acquire_dataset()

    downloading()
    (snap,) = seen
    assert snap.running == ("acquire_dataset",) and snap.note == notice
    display = RunDisplay(Progress(console=Console(file=io.StringIO(), width=200)), epochs=1)
    display.show(snap)
    line = display.progress.tasks[display.stage_row].description
    assert line == f"acquire_dataset (0 stages done) · {notice}"
    display.show(replace(snap, running=()))  # the stage ended: its notice goes with it
    assert display.progress.tasks[display.stage_row].description == "0 stages done"
