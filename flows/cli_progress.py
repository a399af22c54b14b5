"""`boneflow run`'s live display, fed by Prefect's API instead of by log lines (what it shows:
README, "Run it locally (no server)").

A background thread polls the API for the flow run and its subflows; the flow run's id comes
from an `on_running` hook, so the poller never has to guess which run is ours on a shared
server. The pretrained-weights download stays a logging handler: the core (boneflow.train.model)
has no Prefect and reports only through its logger; its records are shown on a line of their
own, never parsed.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

WEIGHTS_LOGGER = "boneflow.train.model"  # under the live display torch.hub's byte bar is overdrawn
POLL_S = 1.0  # a stage shorter than this may not show (the count of stages done is exact); light on the API


@dataclass(frozen=True)
class RunSnapshot:
    """What the API says about one flow run and its subflows at one moment."""

    running: tuple[str, ...]  # stage (task) names now running, oldest first
    done: int  # task runs completed (cached ones too)
    epoch_percent: float | None  # the training progress artifact, None before training starts
    epoch_text: str
    note: str = ""  # the latest warning a running stage logged (a retry notice), "" when none


def _flow_run_tree(client, root: UUID) -> tuple[list[UUID], set[UUID]]:
    """The flow run and its subflows, any depth; plus the task runs that only wait for a subflow."""
    from prefect.client.schemas import filters

    ids, frontier, waiting = [root], [root], set()
    while frontier:
        parents = filters.FlowRunFilterParentFlowRunId(any_=frontier)
        children = client.read_flow_runs(flow_run_filter=filters.FlowRunFilter(parent_flow_run_id=parents))
        frontier = [c.id for c in children if c.id not in ids]
        ids += frontier
        waiting |= {c.parent_task_run_id for c in children if c.parent_task_run_id}
    return ids, waiting


def read_snapshot(client, flow_run_id: UUID) -> RunSnapshot:
    from prefect.client.schemas import filters

    ids, waiting = _flow_run_tree(client, flow_run_id)
    in_tree = filters.FlowRunFilter(id=filters.FlowRunFilterId(any_=ids))
    task_runs = [
        r for r in client.read_task_runs(flow_run_filter=in_tree) if r.id not in waiting and r.state is not None
    ]
    running = sorted((r for r in task_runs if r.state.is_running()), key=lambda r: str(r.start_time))
    progress = client.read_artifacts(
        artifact_filter=filters.ArtifactFilter(
            flow_run_id=filters.ArtifactFilterFlowRunId(any_=ids), type=filters.ArtifactFilterType(any_=["progress"])
        )
    )
    latest = max(progress, key=lambda a: str(a.updated), default=None)
    return RunSnapshot(
        running=tuple(r.name.rsplit("-", 1)[0] for r in running),  # a task run is <task name>-<3 hex digits>
        done=sum(r.state.is_completed() for r in task_runs),
        epoch_percent=float(latest.data) if latest is not None else None,
        epoch_text=(latest.description or "training") if latest is not None else "",
        note=_latest_warning(client, [r.id for r in running]),
    )


def _latest_warning(client, task_run_ids: list[UUID]) -> str:
    """The newest WARNING line the running task runs logged: a stage says it is retrying."""
    if not task_run_ids:
        return ""
    from prefect.client.schemas.filters import LogFilter, LogFilterLevel, LogFilterTaskRunId
    from prefect.client.schemas.sorting import LogSort

    logs = client.read_logs(
        log_filter=LogFilter(
            task_run_id=LogFilterTaskRunId(any_=task_run_ids),
            level=LogFilterLevel(ge_=logging.WARNING, le_=logging.WARNING),
        ),
        sort=LogSort.TIMESTAMP_DESC,
        limit=1,
    )
    return logs[0].message.splitlines()[0][:160] if logs else ""


class WeightsLines(logging.Handler):
    """Shows the core's pretrained-weights log records on their own display line."""

    def __init__(self, progress):
        super().__init__(logging.INFO)
        self.progress = progress
        self.row = progress.add_task("", total=None, visible=False)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a display glitch must never break the run
            self.progress.update(self.row, description=record.getMessage()[:120], visible=True)


class RunDisplay:
    """A spinner naming the running stage and a bar over the epochs, updated from the API.

    Use as a context manager around the flow call, with `on_running` as the flow's hook."""

    def __init__(self, progress, epochs: int):
        self.progress = progress
        self.epochs = epochs
        self.stage_row = progress.add_task("starting", total=None)
        self.epoch_row = progress.add_task("training", total=epochs, visible=False)
        self.weights = WeightsLines(progress)
        self.stages_seen: list[str] = []
        self._flow_run_id: UUID | None = None
        self._stop = threading.Event()
        self._final_poll = False
        self._thread: threading.Thread | None = None

    def on_running(self, flow: Any, flow_run: Any, state: Any) -> None:
        if self._flow_run_id is None:  # the first Running state is ours; a Retry keeps the id
            self._flow_run_id = flow_run.id

    def __enter__(self) -> RunDisplay:
        logger = logging.getLogger(WEIGHTS_LOGGER)
        logger.setLevel(logging.INFO)
        logger.addHandler(self.weights)
        self.progress.start()
        # Prefect's settings (which API to talk to) live in context variables: take ours along.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._poll_until_stopped,), name="boneflow-run-display", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._final_poll = exc_info[0] is None  # every stage counted, the bar at its end
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        logging.getLogger(WEIGHTS_LOGGER).removeHandler(self.weights)
        self.progress.stop()

    def show(self, snap: RunSnapshot) -> None:
        self.stages_seen = list(dict.fromkeys([*self.stages_seen, *snap.running]))
        done = f"{snap.done} stages done"
        line = f"{', '.join(snap.running)} ({done})" if snap.running else done
        if snap.note and snap.running:
            line += f" · {snap.note}"
        self.progress.update(self.stage_row, description=line)
        if snap.epoch_percent is not None:
            completed = round(snap.epoch_percent / 100 * self.epochs)
            self.progress.update(self.epoch_row, completed=completed, description=snap.epoch_text, visible=True)

    def _poll_once(self, client) -> None:
        with contextlib.suppress(Exception):  # a display glitch (API busy, run just ending) must never break the run
            self.show(read_snapshot(client, self._flow_run_id))

    def _poll_until_stopped(self) -> None:
        from prefect import get_client

        # No client before the flow is running: with no server configured the flow starts
        # Prefect's ephemeral API, and a second starter racing it would be wasted work.
        while self._flow_run_id is None:
            if self._stop.wait(POLL_S) and self._flow_run_id is None:
                return
        # the API going away is for the run to report, not the display
        with contextlib.suppress(Exception), get_client(sync_client=True) as client:
            while not self._stop.wait(POLL_S):
                self._poll_once(client)
            if self._final_poll:
                self._poll_once(client)


def run_progress():
    """rich's display for `boneflow run`; the "M/N" column stays blank on the stage line (it has
    no total; rich would print "0/?")."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class StepsDone(MofNCompleteColumn):
        def render(self, task):
            return Text("") if task.total is None else super().render(task)

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), StepsDone(), TimeElapsedColumn())
    return Progress(*columns, transient=False)
