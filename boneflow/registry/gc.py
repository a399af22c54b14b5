"""`boneflow gc`: delete what finished runs no longer need, in the store (retention.py) and the
local work dir (README, "Security model"): a `<work dir>/runs/<run_id>/` folder (~215 MB) goes
once its newest file is older than the grace period, finished in the store or not; nothing is
deleted through a symbolic link or outside `<work dir>/runs`.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from boneflow.errors import BoneflowError
from boneflow.registry.retention import StoreGcPlan, plan_store_gc, run_store_gc
from boneflow.store.base import Store
from boneflow.store.keys import RUN_ID_RE

_UNFINISHED = "unfinished run (no manifest in this store) older than the grace period; a Retry redoes its stages"


def _tree_stats(folder: Path) -> tuple[int, float]:
    """(bytes, newest mtime) of everything under `folder`, links not followed."""
    total, newest = 0, folder.lstat().st_mtime
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = (Path(dirpath) / name).lstat()
            newest = max(newest, st.st_mtime)
            total += st.st_size if name in filenames else 0
    return total, newest


def plan_work_dir_gc(
    work_dir: Path, *, finished: set[str], grace: timedelta, now: datetime
) -> tuple[list[dict], dict[str, str]]:
    """([{path, bytes, reason}] to delete, {run_id: why kept}) for `<work_dir>/runs/*`."""
    runs_dir = Path(work_dir) / "runs"
    delete: list[dict] = []
    kept: dict[str, str] = {}
    if not runs_dir.is_dir() or runs_dir.is_symlink():
        return delete, kept
    for entry in sorted(runs_dir.iterdir()):
        if not RUN_ID_RE.match(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue  # not a run folder boneflow made: not ours to delete
        size, newest = _tree_stats(entry)
        if now - datetime.fromtimestamp(newest, UTC) < grace:
            kept[entry.name] = "younger than the grace period"
            continue
        reason = "run finished in the store" if entry.name in finished else _UNFINISHED
        delete.append({"path": str(entry), "bytes": size, "reason": reason})
    return delete, kept


def remove_run_folder(work_dir: Path, folder: Path) -> None:
    """rmtree a run folder after checking it really is `<work_dir>/runs/<run_id>`."""
    runs_dir = (Path(work_dir) / "runs").resolve()
    if folder.is_symlink() or folder.resolve().parent != runs_dir or not RUN_ID_RE.match(folder.name):
        raise BoneflowError(f"refusing to delete {folder}: it is not a run folder inside {runs_dir}")
    shutil.rmtree(folder)


def _store_report(plan: StoreGcPlan, verb: str) -> dict:
    planned = plan.delete + plan.delete_temp + plan.delete_folders
    items = [{"key": o.key, "bytes": o.size, "reason": why} for o, why in planned]
    skipped = [{"key": k.key, "reason": k.reason} for k in plan.skipped]
    return {verb: items, "bytes": sum(i["bytes"] for i in items), "skipped": skipped}


def collect_garbage(
    store: Store,
    *,
    work_dir: Path | None,
    keep_runs: int = 5,
    grace: timedelta = timedelta(hours=24),
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict:
    """Plan, and unless `dry_run` delete, in the store and the work dir. Returns the JSON report:
    what was deleted ("deleted") or would be ("would_delete"), with sizes and reasons, and
    which runs were kept and why."""
    now = now or datetime.now(UTC)
    if grace < timedelta(0):  # this function deletes: it checks its own bounds, whoever calls it
        raise BoneflowError(f"grace period {grace} is negative; give 0 or more hours.")
    if grace > now - datetime(1970, 1, 1, tzinfo=UTC):
        raise BoneflowError(f"grace period {grace} reaches back before 1970; give fewer hours.")
    plan = plan_store_gc(store, keep_runs=keep_runs, grace=grace, now=now)
    verb = "would_delete" if dry_run else "deleted"
    report: dict[str, Any] = {
        "store": store.url,
        "dry_run": dry_run,
        "keep_runs": keep_runs,
        "grace_hours": round(grace.total_seconds() / 3600, 6),
        "champion_run_id": plan.champion_run_id,
        "store_objects": _store_report(plan, verb),
        "kept_runs": plan.kept_runs,
    }
    if work_dir is not None:
        folders, kept = plan_work_dir_gc(work_dir, finished=plan.finished_runs, grace=grace, now=now)
        report["work_dir"] = {
            "path": str(work_dir),
            verb: folders,
            "bytes": sum(f["bytes"] for f in folders),
            "kept_runs": kept,
        }
    if not dry_run:
        run_store_gc(store, plan)
        if work_dir is not None:
            for folder in report["work_dir"][verb]:
                remove_run_folder(work_dir, Path(folder["path"]))
    return report
