"""Deterministic errors are not retried, the failure artifact's advice matches errors by type,
and every result Prefect persists for boneflow is JSON (nothing is unpickled)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flow_helpers import artifacts_of
from prefect import flow, task

from boneflow.registry.publish import ChampionConflictError
from boneflow.store.errors import ConflictError, IntegrityError, StoreUnavailableError
from flows.retrain import retrain
from tasks.artifacts import _DEFAULT_WHAT_TO_DO, _WHAT_TO_DO, advice_for, write_failure_artifact
from tasks.retry import retry_unless_deterministic

pytestmark = pytest.mark.flows
REPO = Path(__file__).resolve().parents[2]


def _task_runs(flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


@pytest.mark.parametrize(
    "error,attempts",
    [
        (ChampionConflictError("champion.json changed since it was read"), 1),
        (IntegrityError("runs/x/model.safetensors does not match its manifest"), 1),
        (StoreUnavailableError("store unreachable"), 3),  # transient: retried as configured
    ],
)
def test_only_transient_errors_are_retried(error, attempts):
    calls: list[int] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_deterministic)
    def flaky() -> None:
        calls.append(1)
        raise error

    @flow
    def once() -> None:
        flaky()

    state = once(return_state=True)
    assert state.is_failed() and len(calls) == attempts


def test_an_empty_dataset_fails_at_once_not_after_a_retry(tiny_config, tmp_path):
    (tmp_path / "empty").mkdir()
    t0 = time.perf_counter()
    state = retrain(tiny_config(data_dir=str(tmp_path / "empty")), return_state=True)
    seconds = time.perf_counter() - t0
    assert state.is_failed()
    acquire = _task_runs(state.state_details.flow_run_id)["acquire_dataset"]
    assert acquire.run_count == 1 and seconds < 45, (acquire.run_count, seconds)  # was 2 runs, 60 s apart
    failure = artifacts_of(state.state_details.flow_run_id)["failure-retrain"].data
    assert "`LayoutError`" in failure and "train/val/test" in failure.split("What to do:")[1]


def _stages():
    """Every task and flow object the orchestration modules define."""
    import importlib

    from prefect import Flow, Task

    found = {}
    for path in [*sorted((REPO / "tasks").glob("*.py")), *sorted((REPO / "flows").glob("*.py"))]:
        module = importlib.import_module(f"{path.parent.name}.{path.stem}")
        found |= {
            f"{path.parent.name}.{path.stem}.{name}": obj
            for name, obj in vars(module).items()
            if isinstance(obj, (Task, Flow)) and obj.__module__ == module.__name__
        }
    return found


def test_every_stage_persists_json_and_skips_retries_of_deterministic_errors():
    from tasks.results import RESULTS

    stages, with_retries = _stages(), 0
    assert len(stages) >= 17, sorted(stages)
    for name, obj in stages.items():
        assert obj.result_serializer is RESULTS, name
        if getattr(obj, "retries", 0):
            with_retries += 1
            assert obj.retry_condition_fn is retry_unless_deterministic, name
    assert with_retries >= 8  # acquire_dataset has none: the core retries the transient Kaggle failures
    assert not getattr(stages["tasks.data.acquire_dataset"], "retries", 0)


def test_stage_contracts_round_trip_through_the_result_serializer():
    from boneflow.contracts import Predictions, Scores
    from tasks.results import RESULTS

    scores = Scores(
        run_id="20261126T000000Z-abcdef",
        splits={"test_clean": {"n": 2, "accuracy": 0.5}},
        predictions={
            "test_clean": Predictions(paths=["a", "b"], labels=[1, 0], predicted=[1, 1], probability=[0.9, 0.6])
        },
    )
    blob = RESULTS.dumps(scores)
    assert b"__class__" not in blob and json.loads(blob)["__contract__"] == "Scores"
    assert RESULTS.loads(blob) == scores
    # a stored result naming a class outside the registry is refused, never imported
    with pytest.raises(ValueError, match="unknown stage contract"):
        RESULTS.loads(b'{"__contract__": "os.system", "data": {}}')


def test_advice_is_found_by_type_along_the_class_hierarchy():
    assert advice_for(ChampionConflictError("lost the race")) == _WHAT_TO_DO[ChampionConflictError]
    assert "promoted to champion between" in advice_for(ChampionConflictError("x"))

    class PartialConflict(ConflictError):  # a subclass without its own entry gets its parent's
        pass

    assert advice_for(PartialConflict("x")) == _WHAT_TO_DO[ConflictError]
    assert advice_for(ValueError("x")) == _DEFAULT_WHAT_TO_DO and advice_for(None) == _DEFAULT_WHAT_TO_DO


def test_gate_advice_names_the_run_folder():
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Failed

    created = datetime(2026, 11, 23, 3, 0, 5, tzinfo=UTC)
    run = FlowRun(
        id=uuid.UUID("abcdef12-0000-4000-8000-000000000000"), name="brave-otter", flow_id=uuid.uuid4(), created=created
    )
    rejected = Failed(name="GateRejected", message="Gate rejected: test_clean accuracy 0.5 < 0.9")
    write_failure_artifact(retrain, run, rejected)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        latest = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["failure-retrain"])))
    text = max(latest, key=lambda a: a.created).data
    assert "`runs/20261123T030005Z-abcdef/`" in text and "runs//" not in text


def _plain_json(value) -> bool:
    if isinstance(value, dict):
        return not ({"__class__", "__exc_type__"} & set(value)) and all(map(_plain_json, value.values()))
    if isinstance(value, list):
        return all(map(_plain_json, value))
    return isinstance(value, (str, int, float, bool, type(None)))


def _child_flow_run_ids(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
    return [c.id for c in children]


def test_persisted_results_are_plain_json_not_pickles(tiny_config):
    state = retrain(tiny_config(seed=4), return_state=True)
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    runs = {}
    for run_id in [flow_run_id, *_child_flow_run_ids(flow_run_id)]:  # retrain and its train subflow
        runs |= _task_runs(run_id)
    stored = {
        name: r.state.data
        for name, r in runs.items()
        if r.state is not None
        and getattr(r.state.data, "storage_key", None)
        and Path(r.state.data.storage_key).is_file()
    }  # NO_CACHE tasks are never persisted
    stored["retrain"] = state.data.metadata  # the flow's own result
    assert {
        "acquire_dataset",
        "pack_and_store",
        "augmentation_preview",
        "fit_model",
        "train",
        "evaluate_candidate",
        "evaluate_champion",
        "publish_run_files",
        "promote_champion",
    } <= set(stored)
    for name, meta in stored.items():
        assert meta.serializer.type == "json", name
        # local result storage: the key is the file's path. Task records wrap the payload with
        # their metadata; flow results are the bare payload.
        content = json.loads(Path(meta.storage_key).read_bytes())
        if "metadata" in content:
            assert content["metadata"]["serializer"]["type"] == "json", name
            content = json.loads(content["result"])
        assert _plain_json(content), (name, str(content)[:300])


def test_a_finished_run_keeps_no_checkpoints_and_leaves_an_empty_work_folder(tiny_config, tmp_path, monkeypatch):
    """A published run keeps what a user reads and serving needs; its checkpoints (only there to
    resume an unfinished training) are deleted, and the worker's local work folder (decoded
    images, checkpoints, the packed-dataset copy, every stage's scratch) is emptied."""
    work = tmp_path / "work"
    monkeypatch.setenv("BONEFLOW_WORK_DIR", str(work))
    config = tiny_config(seed=5, epochs=2)
    state = retrain(config, return_state=True)
    assert state.is_completed(), state.message
    run_id = state.result()["run_id"]
    run_dir = Path(config.store_url) / "runs" / run_id
    assert not (run_dir / "checkpoints").exists()
    listed = json.loads((run_dir / "manifest.json").read_text())["files"]
    assert not [name for name in listed if name.startswith("checkpoints/")]
    assert {"model.safetensors", "model.json", "metrics.json", "report.md", "splits.json", "roc.png"} <= set(listed)
    assert "examples/examples.json" in listed
    assert work.is_dir() and [p for p in work.rglob("*") if not p.is_dir()] == []
