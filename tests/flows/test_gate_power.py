"""The gate refuses to judge a split that is too small (exit 3, no champion), and every run
leaves its honest numbers under the one artifact key `boneflow-quality`, whose history is the
trend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flow_helpers import artifacts_of

from flows.cli_run import EXIT_REJECTED, _summary
from flows.retrain import retrain
from tasks.artifacts import QUALITY_KEY

pytestmark = pytest.mark.flows


def _quality_history() -> list:
    """Every version of the quality artifact, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[QUALITY_KEY])), sort=ArtifactSort.CREATED_DESC
        )


def test_too_few_images_refuses_then_a_judged_run_adds_to_the_quality_history(tiny_config, capsys):
    before = len(_quality_history())
    refused = tiny_config(min_gate_n=10_000)
    state = retrain(refused, return_state=True)
    assert state.is_failed()
    assert "holds" in state.message and "fewer than 10000: too few to judge" in state.message
    assert _summary(state, refused) == EXIT_REJECTED and "not promoted" in capsys.readouterr().err
    store = Path(refused.store_url)
    assert not (store / "champion.json").exists()
    run_dir = next(p for p in (store / "runs").iterdir() if (p / "manifest.json").is_file())
    gate = json.loads((run_dir / "metrics.json").read_text())["gate"]
    assert gate["refused"] is True and gate["passed"] is False
    assert "**Gate: REFUSED" in (run_dir / "report.md").read_text()
    refused_note = artifacts_of(state.state_details.flow_run_id)[QUALITY_KEY].data
    assert "REFUSED" in refused_note and run_dir.name in refused_note

    judged = tiny_config(seed=5)  # same store, min_gate_n 0: judged and promoted
    state = retrain(judged, return_state=True)
    assert state.is_completed(), state.message
    run_id = state.result()["run_id"]
    history = _quality_history()
    assert len(history) == before + 2  # one version per run, under one key
    newest, previous = history[0].data, history[1].data
    assert run_id in newest and "PASSED" in newest and "fractured recall" in newest and "AUROC" in newest
    assert run_dir.name in previous and "REFUSED" in previous
