"""Garbage collection in a store: what a finished history no longer needs (the rules: README,
"Security model", and docs/ARCHITECTURE.md, "gc"). A run younger than the grace period may be
live (training uploads a checkpoint every epoch, publish writes the manifest last); datasets,
shared by runs, are never touched. Ages use the store's clock (S3 LastModified, file mtime)
against this machine's: keep the grace period far above any clock skew.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from boneflow.registry.publish import read_champion
from boneflow.store.base import ObjectInfo, SkippedKey, Store
from boneflow.store.errors import InvalidKeyError, StoreError
from boneflow.store.keys import (
    CHAMPION_KEY,
    MANIFEST_NAME,
    RUN_ID_RE,
    RUNS_PREFIX,
    checkpoints_prefix,
    validate_run_id,
)


@dataclass
class StoreGcPlan:
    champion_run_id: str | None
    finished_runs: set[str]  # runs with a manifest (whatever their age)
    delete: list[tuple[ObjectInfo, str]] = field(default_factory=list)  # (object, reason), in order
    delete_temp: list[tuple[ObjectInfo, str]] = field(default_factory=list)
    kept_runs: dict[str, str] = field(default_factory=dict)  # run id -> why it is kept whole
    delete_folders: list[tuple[ObjectInfo, str]] = field(default_factory=list)  # empty run folders
    skipped: list[SkippedKey] = field(default_factory=list)  # listed keys outside the layout


def champion_run_id(store: Store) -> str | None:
    """The champion's run id, or None when nothing was promoted. A pointer that cannot be read
    stops the collection: without it there is no telling which run must survive."""
    found = read_champion(store)
    if found is None:
        return None
    try:
        return validate_run_id(found[0].get("run_id"))
    except InvalidKeyError as err:
        raise StoreError(
            f"{CHAMPION_KEY!r} in {store.url} names no valid run ({err}); gc will not "
            "guess which run to keep. Fix or re-promote the champion first."
        ) from None


def _runs(store: Store) -> tuple[dict[str, list[ObjectInfo]], list[SkippedKey]]:
    """({run id: its objects}, keys skipped) from one listing of runs/."""
    listing = store.scan(RUNS_PREFIX)
    runs: dict[str, list[ObjectInfo]] = {}
    skipped = list(listing.skipped)
    for obj in listing.objects:
        parts = obj.key.split("/")  # runs/<run id>/<name> or runs/<run id>/<folder>/<name>
        if not RUN_ID_RE.match(parts[1]):
            skipped.append(SkippedKey(obj.key, "not inside a run folder (runs/<run id>/); not boneflow's"))
        elif len(parts) > 4:
            skipped.append(SkippedKey(obj.key, "deeper than a run's layout (runs/<run id>/<folder>/<file>)"))
        else:
            runs.setdefault(parts[1], []).append(obj)
    return runs, sorted(skipped, key=lambda k: k.key)


def plan_store_gc(store: Store, *, keep_runs: int, grace: timedelta, now: datetime) -> StoreGcPlan:
    """What `run_store_gc` would delete and keep; reads the store, changes nothing."""
    if keep_runs < 0:
        raise StoreError(f"keep_runs={keep_runs}: give 0 or more runs to keep.")
    champion = champion_run_id(store)
    runs, skipped = _runs(store)
    manifest_of = {run_id: f"{RUNS_PREFIX}{run_id}/{MANIFEST_NAME}" for run_id in runs}
    finished = {r for r, objs in runs.items() if any(o.key == manifest_of[r] for o in objs)}
    newest = set(sorted(finished - {champion}, reverse=True)[:keep_runs])  # run ids sort by start time
    plan = StoreGcPlan(champion_run_id=champion, finished_runs=finished, skipped=skipped)
    for run_id in sorted(runs):
        objs = sorted(runs[run_id], key=lambda o: (o.key == manifest_of[run_id], o.key))  # manifest last
        if run_id == champion:
            plan.kept_runs[run_id] = "champion"
        elif now - max(o.modified for o in objs) < grace:
            plan.kept_runs[run_id] = "younger than the grace period (may still be running)"
        elif run_id not in finished:
            plan.delete += [(o, "run that never got a manifest") for o in objs]
        elif run_id in newest:
            plan.kept_runs[run_id] = f"among the newest {keep_runs} finished runs (checkpoints removed)"
            prefix = checkpoints_prefix(run_id)
            plan.delete += [(o, "checkpoint of a finished run") for o in objs if o.key.startswith(prefix)]
        else:
            plan.delete += [(o, f"finished run older than the newest {keep_runs}") for o in objs]
    plan.delete_temp = [
        (t, "leftover of an interrupted write") for t in store.temp_objects() if now - t.modified >= grace
    ]
    plan.delete_folders = [
        (f, "empty folder (left by an interrupted gc)")
        for f in store.empty_folders(RUNS_PREFIX)
        if now - f.modified >= grace
    ]
    return plan


def run_store_gc(store: Store, plan: StoreGcPlan) -> None:
    """Delete what `plan` lists, in its order; then drop emptied folders of a folder store."""
    for obj, _reason in plan.delete:
        store.delete(obj.key)
    for obj, _reason in plan.delete_temp:
        store.delete_temp(obj.key)
    # The folders of runs this gc deleted from, whatever their age (one a killed gc emptied too).
    for run_id in sorted({obj.key.split("/")[1] for obj, _ in plan.delete}):
        for folder in store.empty_folders(f"{RUNS_PREFIX}{run_id}/"):  # deepest first
            store.remove_empty_folder(folder.key)
        store.remove_empty_folder(f"{RUNS_PREFIX}{run_id}/")
    for folder, _reason in plan.delete_folders:
        store.remove_empty_folder(folder.key)
