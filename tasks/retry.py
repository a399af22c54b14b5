"""Which task failures are worth a retry (`retry_condition_fn` of every task with retries).

A retry helps when the world may be different a minute later: a store or Kaggle hiccup, a
timeout, a worker under load. It cannot help when the same inputs meet the same code: a
dataset without its split folders, an invalid setting, a lost champion race (the ETag this run
compared against is stale for good), bytes that do not match their manifest, a damaged packed
dataset. Retrying those only delays the failure: a lost promotion race took 209 s instead of
52 s, an empty dataset 70 s to fail.
"""

from __future__ import annotations

from pydantic import ValidationError

from boneflow.errors import GateError
from boneflow.intake.layout import LayoutError
from boneflow.splits.pack import PackedDataError
from boneflow.splits.plan import SplitError
from boneflow.store.errors import ConditionalWritesUnsupportedError, ConflictError, IntegrityError, InvalidKeyError

# ConflictError covers publish.ChampionConflictError.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    LayoutError,
    SplitError,
    ValidationError,
    GateError,
    PackedDataError,
    ConflictError,
    IntegrityError,
    InvalidKeyError,
    ConditionalWritesUnsupportedError,
)


def retry_unless_deterministic(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry every failure except the deterministic ones."""
    return not isinstance(state.result(raise_on_failure=False), DETERMINISTIC_ERRORS)


# The two retry schedules of the stages: store transfers ride out a minutes-long outage, the
# rest (reads, re-scoring) one short hiccup.
STORE_RETRIES = dict(retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=retry_unless_deterministic)
SHORT_RETRIES = dict(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_deterministic)
