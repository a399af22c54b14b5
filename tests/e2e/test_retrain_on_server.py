"""End to end on real parts: `prefect server` (SQLite, private PREFECT_HOME), the cpu and gpu
process pools, `prefect --no-prompt deploy --all`, one worker per pool, a moto S3 server.

The tests share one stack. The runs they build on are module-scoped fixtures, made once by
whichever test needs them first, so any one test also runs alone: the promoted first run ->
a run the gate rejects (against that champion) -> the UI's Retry of it, which reuses the finished
stages; the gpu worker dying mid-training, whose retried training resumes from its last checkpoint,
needs only the stack.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import prefect_stack as ps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

BUCKET, PREFIX = "boneflow", "e2e"


def _config(data_dir: Path, **overrides) -> dict:
    # tiny and fast: 32 px crops, 2 epochs, random init; the floors at 0 so the first run promotes
    return {
        "data_dir": str(data_dir),
        "store_url": f"s3://{BUCKET}/{PREFIX}",
        "image_size": 32,
        "epochs": 2,
        "batch_size": 32,
        "patience": 0,
        "pretrained": False,
        "workers": 2,
        "min_accuracy": 0.0,
        "min_recall": 0.0,
        "max_regression": 1.0,
        "min_gate_n": 0,
        "folds": 1,  # one training run per retrain; tests/e2e/test_crossfit_on_server.py fans folds out
        "dispatch": "deployment",
        **overrides,
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from boneflow.demo.dataset import write_demo_dataset

    path = tmp_path_factory.mktemp("demo")
    write_demo_dataset(path, n=160, seed=1)
    return path


@pytest.fixture(scope="module")
def timings() -> dict[str, float]:
    """Seconds each step took, printed when the stack stops (a record, never read by a test)."""
    return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, timings):
    base = tmp_path_factory.mktemp("stack")
    t0 = time.perf_counter()
    with ps.running_stack(
        base / "prefect", s3_bucket=BUCKET, extra_env={"BONEFLOW_WORK_DIR": str(base / "work")}
    ) as stack:
        timings["stack_up_s"] = time.perf_counter() - t0
        yield stack
    print(f"\ne2e timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")


@pytest.fixture(scope="module")
def s3(stack):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _champion(s3) -> tuple[dict, str]:
    obj = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/champion.json")
    return json.loads(obj["Body"].read()), obj["ETag"]


def _run_and_wait(stack, config: dict, name: str, timings: dict) -> dict:
    t0 = time.perf_counter()
    flow_run_id = ps.trigger(stack, "retrain/retrain", {"config": config})
    run = ps.wait_for_state(stack, flow_run_id, timeout=420)
    timings[f"{name}_s"] = time.perf_counter() - t0
    timings[f"{name}_flow_run_time_s"] = run["total_run_time"]
    return run


def _training_runs_of(stack, flow_run_id: str) -> list[dict]:
    """The train-gpu flow runs a retrain flow run started (their run ids end in its id's first 6 hex)."""
    suffix = flow_run_id.replace("-", "")[:6]
    return [r for r in ps.flow_runs_of(stack, "train/train-gpu") if r["parameters"]["run_id"].endswith(suffix)]


@dataclass(frozen=True)
class FirstRun:
    run: dict  # the retrain flow run, as it ended
    wall_s: float  # Run button to its final state
    trainings: list[dict]  # the train-gpu flow runs it started


@pytest.fixture(scope="module")
def first_run(stack, dataset, timings) -> FirstRun:
    """The first retrain on an empty store (floors at 0): it promotes."""
    run = _run_and_wait(stack, _config(dataset), "first_run", timings)
    return FirstRun(run=run, wall_s=timings["first_run_s"], trainings=_training_runs_of(stack, run["id"]))


@dataclass(frozen=True)
class RejectedRun:
    run: dict  # the retrain flow run the gate rejected, as it ended
    champion_before: tuple[dict, str]  # champion.json and its ETag before it ran


@pytest.fixture(scope="module")
def rejected_run(stack, dataset, s3, first_run, timings) -> RejectedRun:
    """A forced retrain after the first run promoted, with a floor no model reaches (accuracy 1.0)."""
    assert first_run.run["state"]["type"] == "COMPLETED", "the first run did not promote: nothing to keep"
    before = _champion(s3)
    run = _run_and_wait(stack, _config(dataset, min_accuracy=1.0, force=True), "rejected_run", timings)
    return RejectedRun(run=run, champion_before=before)


@dataclass(frozen=True)
class Retried:
    run: dict  # the rejected run after the UI's Retry, as it ended again
    trainings_before: int  # train-gpu flow runs before the Retry


@pytest.fixture(scope="module")
def retried_once(stack, rejected_run, timings) -> Retried:
    """The UI's Retry of the rejected run, with the workers' work folder as the first attempt left it."""
    run = rejected_run.run
    assert run["state"]["type"] == "FAILED", "the gate did not reject the run: nothing to retry"
    trainings_before = len(ps.flow_runs_of(stack, "train/train-gpu"))
    t0 = time.perf_counter()
    ps.retry(stack, run["id"])
    again = ps.wait_for_state(stack, run["id"], after=run["state"]["id"], timeout=300)
    timings["retry_s"] = time.perf_counter() - t0
    return Retried(run=again, trainings_before=trainings_before)


def _eventually(fn, timeout: float = 20):
    """Task-run states and artifacts reach the API a little after the flow run ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_run_button_trains_on_gpu_pool_and_promotes(stack, s3, first_run, timings):
    run = first_run.run
    assert run["state"]["type"] == "COMPLETED", ps.logs(stack, run["id"])[-20:]

    children = first_run.trainings
    assert len(children) == 1 and children[0]["state"]["type"] == "COMPLETED"
    assert children[0]["work_pool_name"] == "gpu" and run["work_pool_name"] == "cpu"
    timings["first_run_train_flow_run_time_s"] = children[0]["total_run_time"]

    champion, _ = _champion(s3)
    assert re.search(run["id"].replace("-", "")[:6] + "$", champion["run_id"])

    def has_artifacts():
        keys = {a["key"] for a in ps.artifacts(stack, run["id"]) if a["key"]}
        rid = champion["run_id"].lower()
        for expected in (
            "report",
            "per-class-metrics",
            "exclusions",
            "leakage-pairs",
            "roc",
            "confusion-matrix",
            "augmentation-preview",
            "link-model",
        ):
            assert f"{expected}-{rid}" in keys, (expected, keys)
        report = next(a for a in ps.artifacts(stack, run["id"]) if a["key"] == f"report-{rid}")
        assert "data:image/png;base64," in report["data"] and "Gate: PASSED" in report["data"]
        progress = ps.artifacts(stack, children[0]["id"])
        assert any(a["key"] == f"training-progress-{rid}" and a["data"] == 100.0 for a in progress)

    _eventually(has_artifacts)
    assert any(line.startswith("epoch 2/2") for line in ps.logs(stack, children[0]["id"]))
    timings["first_run_prefect_overhead_s"] = _overhead(stack, run["id"], children[0]["id"], first_run.wall_s)


def _overhead(stack, parent_id: str, child_id: str, wall_s: float) -> float:
    """Wall time from the Run button to Completed minus the time spent inside the stages
    (task bodies of both flow runs; the dispatch task only waits, so it is left out)."""
    work = sum(t["total_run_time"] for t in ps.task_runs(stack, child_id))
    work += sum(t["total_run_time"] for t in ps.task_runs(stack, parent_id) if t["name"].rsplit("-", 1)[0] in _STAGES)
    return wall_s - work


_STAGES = {
    "acquire_dataset",
    "fetch_packed_dataset",
    "validate",
    "audit",
    "pack_and_store",
    "dataset_artifacts",
    "augmentation_preview",
    "read_champion_pointer",
    "evaluate_candidate",
    "evaluate_champion",
    "gate",
    "publish_run_files",
    "report_artifacts",
    "promote_champion",
    "empty_work_folder",
    "fetch_training_data",
    "fetch_run_checkpoints",
    "fit_model",
}


def test_unreachable_gate_fails_with_reasons_and_keeps_champion(stack, s3, rejected_run):
    before, etag = rejected_run.champion_before
    run = rejected_run.run
    assert run["state"]["type"] == "FAILED", ps.logs(stack, run["id"])[-20:]
    assert run["state"]["message"].startswith("Gate rejected:") and "< 1.000" in run["state"]["message"]
    after, etag_after = _champion(s3)
    assert (after, etag_after) == (before, etag)

    def has_failure_artifact():
        found = {a["key"]: a for a in ps.artifacts(stack, run["id"]) if a["key"]}
        assert "failure-retrain" in found and "`gate`" in found["failure-retrain"]["data"]
        assert any(k.startswith("report-") for k in found)

    _eventually(has_failure_artifact)


def test_ui_retry_reuses_finished_stages(stack, rejected_run, retried_once):
    run, again = rejected_run.run, retried_once.run
    assert again["state"]["type"] == "FAILED" and again["state"]["message"].startswith("Gate rejected")
    trainings = ps.flow_runs_of(stack, "train/train-gpu")
    assert len(trainings) == retried_once.trainings_before, trainings  # not trained again

    def reused():
        states = ps.task_states(stack, run["id"])
        for stage in ("acquire_dataset", "train_on_gpu_pool", "evaluate_candidate", "publish_run_files"):
            assert "Cached" in states.get(stage, []), (stage, states)
        assert "validate" not in states  # the packed dataset came back from the store

    _eventually(reused)


def test_retry_needs_nothing_the_first_attempt_left_on_the_worker(stack, rejected_run, retried_once):
    """The UI's Retry may land on another machine: with the workers' local work folder gone
    (packed-dataset copy, checkpoints, scratch), the retry (its second, after `retried_once`)
    still reuses the finished stages from their persisted values and the store, and publishes
    the same rejected run."""
    run = rejected_run.run
    shutil.rmtree(stack.extra_env["BONEFLOW_WORK_DIR"])
    before = ps.flow_run(stack, run["id"])
    trainings_before = len(ps.flow_runs_of(stack, "train/train-gpu"))
    ps.retry(stack, run["id"])
    again = ps.wait_for_state(stack, run["id"], after=before["state"]["id"], timeout=300)
    assert again["state"]["type"] == "FAILED", ps.logs(stack, run["id"])[-20:]
    assert again["state"]["message"].startswith("Gate rejected")
    assert len(ps.flow_runs_of(stack, "train/train-gpu")) == trainings_before  # not trained again

    def reused_and_reported():  # attempts so far: the first run and two retries
        states = ps.task_states(stack, run["id"])
        for stage in ("train_on_gpu_pool", "evaluate_candidate", "publish_run_files"):
            assert states.get(stage, []).count("Cached") >= 2, (stage, states)
        # the report artifacts were made again, from the run's files in the store
        assert states.get("report_artifacts", []).count("Completed") >= 3, states
        assert "validate" not in states  # the packed dataset came back from the store

    _eventually(reused_and_reported)


def _wait_for_checkpoint(s3, run_suffix: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/runs/")
        for obj in listing.get("Contents", []):
            if re.search(rf"-{run_suffix}/checkpoints/epoch-\d+\.pt$", obj["Key"]):
                return obj["Key"]
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared in the store")


def test_killed_gpu_worker_then_retry_resumes_from_checkpoint(stack, dataset, s3, timings):
    t0 = time.perf_counter()
    flow_run_id = ps.trigger(stack, "retrain/retrain", {"config": _config(dataset, epochs=4, seed=2, force=True)})
    suffix = flow_run_id.replace("-", "")[:6]
    key = _wait_for_checkpoint(s3, suffix)
    stack.kill_worker("gpu")  # the machine dies mid-training, flow run process and all
    child = next(r for r in ps.flow_runs_of(stack, "train/train-gpu") if r["parameters"]["run_id"].endswith(suffix))
    assert ps.flow_run(stack, child["id"])["state"]["type"] == "RUNNING"
    run_id = key.split("/")[2]
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/runs/{run_id}/train_result.json").get("Contents")

    stack.start_worker("gpu")
    ps.retry(stack, child["id"])  # the UI's Retry on the training flow run
    run = ps.wait_for_state(stack, flow_run_id, timeout=420)
    timings["killed_and_resumed_run_s"] = time.perf_counter() - t0
    assert run["state"]["type"] == "COMPLETED", ps.logs(stack, flow_run_id)[-20:]

    result = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/runs/{run_id}/train_result.json")["Body"].read())
    assert result["resumed_from_epoch"] >= 1 and result["epochs_run"] == 4
    champion, _ = _champion(s3)
    assert champion["run_id"] == run_id
