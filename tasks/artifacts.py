"""The parts of the artifacts a user reads in the Prefect UI (keys, plots, tables, links), and the failure hook.

Plots travel inside the artifacts as data: URIs (the UI renders them in markdown and image
artifacts), so reading a run's outcome never needs access to the store.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas import filters
from prefect.client.schemas.objects import StateType
from prefect.logging import get_logger
from pydantic import ValidationError

from boneflow.gate.decision import GATE_REJECTED
from boneflow.intake.acquire import AcquireError
from boneflow.intake.layout import LayoutError
from boneflow.registry.publish import ChampionConflictError
from boneflow.splits.pack import PackedDataError
from boneflow.splits.plan import SplitError
from boneflow.store.errors import ConflictError, IntegrityError, StoreUnavailableError
from boneflow.store.keys import run_key
from tasks.runtime import run_id_of

log = get_logger("boneflow.artifacts")


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    raw = "-".join(p for p in parts if p)
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def inline_images(markdown: str, images: dict[str, Path]) -> str:
    """Replace `](name.png)` links to the run's plots with data: URIs, so the UI shows them."""
    for name, path in images.items():
        if Path(path).is_file():
            markdown = markdown.replace(f"]({name})", f"]({png_data_uri(path)})")
    return markdown


QUALITY_KEY = "boneflow-quality"  # one key for every run: the UI's artifact history is the trend


def table_artifact(key: str, rows: list[dict], description: str) -> None:
    """A table; an empty one gets a single explanatory row (an empty table reads as broken)."""
    create_table_artifact(rows or [{"note": "none"}], key=artifact_key(key), description=description)


def store_link(store_url: str, key: str) -> str:
    """Link to an object: file:// for a folder store, s3://bucket/prefix/key for S3."""
    if store_url.startswith("s3://"):
        return store_url.rstrip("/") + "/" + key
    return Path(store_url.removeprefix("file://"), key).resolve().as_uri()


def link_artifacts(store_url: str, run_id: str, names: list[str]) -> None:
    for name in names:
        create_link_artifact(
            store_link(store_url, run_key(run_id, name)),
            link_text=name,
            key=artifact_key("link", Path(name).stem, run_id),
            description=f"{name} of run {run_id} in the store",
        )


# --- failure hook -----------------------------------------------------------------------

# Looked up along the error's class hierarchy (most specific first), so subclasses such as
# publish.ChampionConflictError find their own advice or their parent's.
_WHAT_TO_DO: dict[type[BaseException], str] = {
    AcquireError: "Kaggle was unreachable or the handle is wrong: check the handle and Kaggle "
    "credentials, or set data_dir to a local copy; then press Retry.",
    LayoutError: "The dataset folder does not have train/val/test with images of both classes: "
    "fix data_dir (cleaning_report.json lists what was excluded or skipped); then "
    "start a new run.",
    StoreUnavailableError: "The store could not be reached: check store_url, AWS_ENDPOINT_URL and "
    "the credentials of the worker; then press Retry (finished stages are reused).",
    ChampionConflictError: "Another run was promoted to champion between this run's comparison and "
    "its promotion, so this one was not promoted. Press Retry: it re-reads the "
    "new champion, re-scores it and gates again (training is reused).",
    ConflictError: "Another run replaced the champion at the same time: press Retry to re-gate "
    "against the new champion.",
    IntegrityError: "A downloaded object does not match its manifest: the store copy is damaged; "
    "inspect the named key, then start a new run with force.",
    PackedDataError: "The packed dataset is damaged or incomplete: delete the folder named in the "
    "message, then press Retry (it is rebuilt or fetched again).",
    SplitError: "The split policy left a split without a class (or was unknown): add images of the "
    "named class, or choose another split_policy, then start a new run.",
    ValidationError: "A setting is invalid: fix the named field and start a new run.",
    TimeoutError: "A stage ran past its timeout: check the worker's load, then press Retry.",
}
_DEFAULT_WHAT_TO_DO = (
    "Read this flow run's logs (the failed task's last lines name the file or "
    "setting); fix it, then press Retry: finished stages are reused from cache."
)


def _failed_stage(flow_run_id) -> str | None:
    """Name of the task that failed in this flow run (None when the flow itself failed)."""
    failed = filters.TaskRunFilterState(type=filters.TaskRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]))
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=filters.FlowRunFilter(id=filters.FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=filters.TaskRunFilter(state=failed),
            )
    except Exception as exc:  # the hook must never hide the original failure
        log.warning("could not read task runs for the failure artifact: %s", exc)
        return None
    return runs[-1].name.rsplit("-", 1)[0] if runs else None


def advice_for(error: object) -> str:
    """What to do about `error`: the advice of its most specific class in _WHAT_TO_DO."""
    return next((_WHAT_TO_DO[cls] for cls in type(error).__mro__ if cls in _WHAT_TO_DO), _DEFAULT_WHAT_TO_DO)


def write_failure_artifact(flow, flow_run, state) -> None:
    """on_failure hook of both flows: which stage, the error, what to do."""
    error = state.result(raise_on_failure=False)
    error_type = type(error).__name__ if isinstance(error, BaseException) else None
    message = str(error) if isinstance(error, BaseException) else (state.message or "")
    stage = _failed_stage(flow_run.id)
    advice = advice_for(error)
    if stage is None and state.name == GATE_REJECTED:  # only the retrain flow ends so
        stage = "gate"
        advice = (
            f"The candidate was published under `runs/{run_id_of(flow_run)}/` for inspection and the "
            "champion is unchanged. Read the report artifact; improve the data or settings, or change "
            "the gate thresholds, then start a new run."
        )
    md = (
        f"# {flow.name} failed\n\n"
        f"| | |\n|---|---|\n"
        f"| stage | `{stage or 'flow'}` |\n"
        f"| error | `{error_type or state.name}` |\n"
        f"| flow run | `{flow_run.name}` ({flow_run.id}) |\n\n"
        f"**Message:** {message}\n\n**What to do:** {advice}\n"
    )
    create_markdown_artifact(md, key=artifact_key("failure", flow.name), description=f"why {flow_run.name} failed")
