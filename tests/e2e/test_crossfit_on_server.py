"""Cross-fitting fanned out on real parts: `prefect server`, the cpu and gpu process pools,
`prefect --no-prompt deploy --all`, one worker per pool, a moto S3 server.

With dispatch=deployment and folds 2 the retrain run starts one `train/train-gpu` flow run per
fold and publishes their ensemble; when one fold's process dies, the UI's Retry of the retrain
run trains that fold again and reuses the finished one. One stack serves both tests; each
triggers its own retrain run, so either also runs alone.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import prefect_stack as ps
from boneflow.store.keys import member_run_id

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

BUCKET, PREFIX = "boneflow", "e2e-crossfit"
TRAIN = "train/train-gpu"


def _config(data_dir: Path, **overrides) -> dict:
    # tiny and fast: 32 px, 2 epochs, random init; the floors at 0 so the run promotes
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
        "split_policy": "regroup",
        "folds": 2,
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
    print(f"\ncrossfit e2e timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")


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


def _get(s3, key: str) -> dict:
    obj = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")
    return {"body": obj["Body"].read(), "etag": obj["ETag"], "modified": obj["LastModified"]}


def _exists(s3, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{key}").get("Contents"))


def _run_id(flow_run: dict) -> str:
    """The store run id of a retrain flow run, as tasks/runtime.py:run_id_of derives it."""
    created = datetime.fromisoformat(flow_run["created"].replace("Z", "+00:00"))
    return created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + flow_run["id"].replace("-", "")[:6]


def _children(stack, run_id: str) -> dict[str, list[dict]]:
    """{member run id: the train-gpu flow runs that trained it, oldest first} for retrain `run_id`."""
    members = {member_run_id(run_id, fold) for fold in range(2)}
    found: dict[str, list[dict]] = {}
    for child in ps.flow_runs_of(stack, TRAIN):
        if child["parameters"]["run_id"] in members:
            found.setdefault(child["parameters"]["run_id"], []).append(child)
    return found


def _wait_for_child(stack, run_id: str, fold: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _children(stack, run_id).get(member_run_id(run_id, fold))
        if runs:
            return runs[-1]
        time.sleep(0.2)
    raise TimeoutError(f"no train-gpu flow run for fold {fold} of {run_id} after {timeout:.0f}s")


def _fold_lines(stack, flow_run_id: str, fold: int) -> list[str]:
    return [
        line
        for line in ps.logs(stack, flow_run_id)
        if line.startswith("training flow run") and f"(fold {fold})" in line
    ]


def _eventually(fn, timeout: float = 20):
    """Logs and states reach the API a little after the flow run ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_folds_train_as_child_runs_on_the_gpu_pool_and_the_ensemble_is_published(stack, dataset, s3, timings):
    t0 = time.perf_counter()
    flow_run_id = ps.trigger(stack, "retrain/retrain", {"config": _config(dataset)})
    run = ps.wait_for_state(stack, flow_run_id, timeout=420)
    timings["two_folds_s"] = time.perf_counter() - t0
    assert run["state"]["type"] == "COMPLETED", ps.logs(stack, flow_run_id)[-30:]
    run_id = _run_id(run)

    children = _children(stack, run_id)
    assert sorted(children) == sorted(member_run_id(run_id, fold) for fold in range(2))
    for fold in range(2):
        (child,) = children[member_run_id(run_id, fold)]  # one flow run per fold
        assert child["parameters"]["fold"] == fold
        assert child["work_pool_name"] == "gpu" and child["state"]["type"] == "COMPLETED"
        assert _exists(s3, f"runs/{member_run_id(run_id, fold)}/train_result.json")
    assert run["work_pool_name"] == "cpu"

    champion = json.loads(_get(s3, "champion.json")["body"])
    assert champion["run_id"] == run_id
    meta = json.loads(_get(s3, f"runs/{run_id}/model.json")["body"])
    assert [m["weights"] for m in meta["members"]] == ["model.safetensors", "member-1.safetensors"]
    assert [m["trained_in"] for m in meta["members"]] == [member_run_id(run_id, f) for f in range(2)]
    assert _exists(s3, f"runs/{run_id}/member-1.safetensors")

    def says_where_each_fold_is():
        for fold in range(2):
            child = children[member_run_id(run_id, fold)][0]
            lines = _fold_lines(stack, flow_run_id, fold)
            assert any(child["name"] in line and "created on work pool 'gpu'" in line for line in lines), lines
            assert any(child["name"] in line and line.endswith(" is Running") for line in lines), lines
            assert any(child["name"] in line and "completed: 2 epochs" in line for line in lines), lines

    _eventually(says_where_each_fold_is)


def test_retry_after_one_fold_died_trains_only_that_fold(stack, dataset, s3, timings):
    """Fold 1's process is killed (as an OOM kill or a lost machine would); the retrain run
    fails naming fold 1; the UI's Retry starts a training flow run for fold 1 alone, fold 0's
    result stays as it was, and the run publishes the two-member ensemble."""
    t0 = time.perf_counter()
    flow_run_id = ps.trigger(stack, "retrain/retrain", {"config": _config(dataset, seed=3, force=True)})
    run_id = _run_id(ps.flow_run(stack, flow_run_id))
    doomed = _wait_for_child(stack, run_id, fold=1)
    ps.kill_flow_run_process(stack, "gpu", doomed["id"])

    failed = ps.wait_for_state(stack, flow_run_id, timeout=420)
    timings["one_fold_killed_s"] = time.perf_counter() - t0
    assert failed["state"]["type"] == "FAILED", ps.logs(stack, flow_run_id)[-30:]
    assert ps.flow_run(stack, doomed["id"])["state"]["type"] == "CRASHED"
    assert not _exists(s3, f"runs/{member_run_id(run_id, 1)}/train_result.json")
    fold0_key = f"runs/{member_run_id(run_id, 0)}/train_result.json"
    fold0_before = _get(s3, fold0_key)
    _eventually(lambda: _assert_any(_fold_lines(stack, flow_run_id, 1), "ended Crashed"))

    t1 = time.perf_counter()
    ps.retry(stack, flow_run_id)
    done = ps.wait_for_state(stack, flow_run_id, after=failed["state"]["id"], timeout=420)
    timings["retry_s"] = time.perf_counter() - t1
    assert done["state"]["type"] == "COMPLETED", ps.logs(stack, flow_run_id)[-30:]

    children = _children(stack, run_id)
    assert len(children[member_run_id(run_id, 0)]) == 1  # fold 0 was not trained again
    first, again = children[member_run_id(run_id, 1)]  # fold 1: the crashed run and its retraining
    assert first["id"] == doomed["id"] and again["parameters"]["fold"] == 1
    assert again["state"]["type"] == "COMPLETED" and again["work_pool_name"] == "gpu"
    assert _get(s3, fold0_key) == fold0_before
    assert _exists(s3, f"runs/{member_run_id(run_id, 1)}/train_result.json")

    meta = json.loads(_get(s3, f"runs/{run_id}/model.json")["body"])
    assert [m["trained_in"] for m in meta["members"]] == [member_run_id(run_id, f) for f in range(2)]
    assert json.loads(_get(s3, "champion.json")["body"])["run_id"] == run_id

    def says_what_was_reused():
        lines = ps.logs(stack, flow_run_id)
        _assert_any(lines, f"fold 0: reusing its finished training in runs/{member_run_id(run_id, 0)}/")
        assert not any("fold 1: reusing" in line for line in lines)
        _assert_any(_fold_lines(stack, flow_run_id, 1), again["name"])

    _eventually(says_what_was_reused)


def _assert_any(lines: list[str], text: str) -> None:
    assert any(text in line for line in lines), (text, lines)
