"""An unreachable gate: the flow run ends Failed with the reasons, the run is published for
inspection, no champion is written, and the failure hook leaves an artifact naming the stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flow_helpers import artifacts_of

from flows.retrain import retrain

pytestmark = pytest.mark.flows


def test_unreachable_gate_fails_with_reasons_and_publishes_without_promoting(tiny_config):
    config = tiny_config(min_accuracy=1.0, seed=1, keep_checkpoints=True)
    state = retrain(config, return_state=True)
    assert state.is_failed() and state.name == "GateRejected"  # what the CLI and the hook read
    assert state.message.startswith("Gate rejected:") and "< 1.000" in state.message
    store = Path(config.store_url)
    assert not (store / "champion.json").exists()
    runs = list((store / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "manifest.json").is_file()
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["gate"]["passed"] is False
    # keep_checkpoints: the published run keeps them, listed in its manifest
    listed = json.loads((runs[0] / "manifest.json").read_text())["files"]
    assert "checkpoints/epoch-0001.pt" in listed and (runs[0] / "checkpoints" / "epoch-0001.pt").is_file()

    keys = artifacts_of(state.state_details.flow_run_id)
    failure = keys["failure-retrain"].data
    assert "`gate`" in failure and "champion is unchanged" in failure


def test_deployment_dispatch_without_the_train_deployment_says_how_to_fix_it(tiny_config):
    config = tiny_config(dispatch="deployment")
    state = retrain(config, return_state=True)
    assert state.is_failed()
    failure = artifacts_of(state.state_details.flow_run_id)["failure-retrain"].data
    assert "'train/train-gpu' does not exist" in failure and "--dispatch local" in failure
    assert not (Path(config.store_url) / "champion.json").exists()
