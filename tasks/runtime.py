"""What every task and flow shares: the run id, local work folders and the cache key.

The cache key (STAGE_CACHE) lets the UI's Retry reuse a finished stage, and never for other
data, settings or task code (README, "Deploy to a real Prefect server").
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import TASK_SOURCE, CacheKeyFnPolicy
from prefect.context import get_run_context

from boneflow.config import RetrainConfig
from boneflow.contracts import Contract
from boneflow.settings import work_root
from tasks.results import RESULTS


def run_work_dir(run_id: str, *parts: str) -> Path:
    path = work_root().joinpath("runs", run_id, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh folder for one task run, removed after it: what a stage fetches or draws there
    is never found by another stage (a Retry may run that one on another worker)."""
    root = work_root() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as path:
        yield Path(path)


def stage(**options):
    """`prefect.task` with the stages' result serializer (tasks/results.py); options as for @task."""
    return task(result_serializer=RESULTS, **options)


def dataset_cache_dir(run_id: str, fingerprint: str, size: int) -> Path:
    """The run's local copy of a packed dataset. Per run, not shared: a finished run empties its
    work folder (tasks/work_folder.py) without pulling the data from under another run on this
    machine; the store's datasets/<fp>/<size>/ is what runs share."""
    return work_root() / "runs" / run_id / "datasets" / fingerprint / str(size)


def run_id_for_current_flow_run() -> str:
    """The store's run id (`YYYYmmddTHHMMSSZ-xxxxxx`): the flow run's creation time and the first
    6 hex digits of its id, so a Retry keeps it (README, "Deploy to a real Prefect server")."""
    return run_id_of(get_run_context().flow_run)


def run_id_of(flow_run) -> str:
    """The run id of a given flow run (what run_id_for_current_flow_run gives inside it)."""
    created = getattr(flow_run, "created", None) or datetime.now(UTC)
    return created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + flow_run.id.hex[:6]


def _key_part(value: Any) -> str:
    if isinstance(value, RetrainConfig):
        # the model-determining fields plus where results go; dispatch/force do not change a stage's output
        return f"config:{value.fingerprint()}:{value.store_url}"
    if isinstance(value, Contract):  # a stage's value: its content decides the next stage's output
        return f"{type(value).__name__}:{value.model_dump_json()}"
    if isinstance(value, (str, int, float, bool, type(None), dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    # in-memory objects (a decoded dataset) are derived from the plain inputs beside them
    return type(value).__name__


def _stage_key(context, parameters: dict[str, Any]) -> str:
    blob = "|".join(f"{name}={_key_part(value)}" for name, value in sorted(parameters.items()))
    return f"{context.task.name}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


# run id + dataset fingerprint + config fingerprint (whatever of those the task takes) + source
STAGE_CACHE = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_stage_key)
