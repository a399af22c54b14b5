"""Data stages of `retrain`: acquire, fetch-or-(validate, audit, pack), dataset artifacts.

Results are paths and dicts, persisted for the UI's Retry; the decoded dataset between validate
and pack stays in memory, never persisted (it is large; a retry reuses the packed copy in the store).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import get_run_logger
from prefect.cache_policies import DEFAULT, NO_CACHE

from boneflow.config import RetrainConfig
from boneflow.contracts import Acquired
from boneflow.duplicates.leakage import LeakageAudit, audit_leakage
from boneflow.intake.acquire import acquire
from boneflow.intake.validate import ValidatedDataset, validate_dataset
from boneflow.registry.transfer import fetch_dataset, upload_dataset
from boneflow.splits.pack import PackedDataError, load_packed, pack_dataset, pack_settings, packed_matches
from boneflow.store import open_store
from boneflow.store.errors import ObjectNotFoundError
from tasks.artifacts import table_artifact
from tasks.retry import SHORT_RETRIES
from tasks.runtime import STAGE_CACHE, dataset_cache_dir, run_work_dir, stage


# No Prefect retries: acquire() retries the transient download failures itself, each with a
# warning line ("Kaggle: attempt 2/3 in 20 s: timed out") that the run's logs and `boneflow
# run`'s display show; the other failures (offline, 401/403/404) cannot pass on a retry.
# DEFAULT cache policy: once per flow run (a new run sees a new Kaggle version).
@stage(timeout_seconds=6 * 3600, cache_policy=DEFAULT, persist_result=True)
def acquire_dataset(config: RetrainConfig) -> Acquired:
    log, t0 = get_run_logger(), time.perf_counter()
    got = acquire(
        data_dir=Path(config.data_dir) if config.data_dir else None,
        kaggle_handle=config.kaggle_handle,
        on_retry=log.warning,
    )
    log.info(
        "acquired %s dataset at %s: %d files, fingerprint %s (%.1fs)",
        got.version.source,
        got.root,
        got.version.file_count,
        got.version.fingerprint[:12],
        time.perf_counter() - t0,
    )
    return Acquired(root=str(got.root), version=got.version.to_dict())


# NO_CACHE: always ask the store, so a Retry after packing finds the uploaded copy and skips
# validate/audit/pack (a cached "not there yet" would send it through them again)
@stage(**SHORT_RETRIES, cache_policy=NO_CACHE)
def fetch_packed_dataset(config: RetrainConfig, run_id: str, dataset_fingerprint: str) -> str | None:
    """The packed dataset from the store (datasets/<fp>/<size>/), or None when it is not there
    yet (or was packed with other settings) and must be built."""
    log, dest = get_run_logger(), dataset_cache_dir(run_id, dataset_fingerprint, config.pack_size)
    try:
        fetch_dataset(open_store(config.store_url), dataset_fingerprint, config.pack_size, dest)
    except ObjectNotFoundError:
        log.info(
            "no packed copy of dataset %s at size %d in the store: building it",
            dataset_fingerprint[:12],
            config.pack_size,
        )
        return None
    expect = pack_settings(
        fingerprint=dataset_fingerprint,
        size=config.pack_size,
        min_side=config.min_side,
        leak_max_distance=config.leak_max_distance,
        split_policy=config.split_policy,
        min_gate_n=config.min_gate_n,
        seed=config.seed,
        max_bytes=config.max_bytes,
        folds=config.folds,
    )
    try:
        if not packed_matches(load_packed(dest).manifest, expect):
            log.info("the stored packed dataset used other packing or split settings: rebuilding")
            return None
    except PackedDataError as err:
        log.warning("stored packed dataset unusable (%s): rebuilding", err)
        return None
    log.info("reusing packed dataset %s/%d from the store at %s", dataset_fingerprint[:12], config.pack_size, dest)
    return str(dest)


@stage(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=6 * 3600)
def validate(root: str, config: RetrainConfig, run_id: str) -> ValidatedDataset:
    log, t0 = get_run_logger(), time.perf_counter()
    validated = validate_dataset(
        Path(root),
        workdir=run_work_dir(run_id, "validate"),
        pack_size=config.pack_size,
        min_side=config.min_side,
        workers=config.workers,
        max_bytes=config.max_bytes,
    )
    log.info(
        "validated %s: kept %d images, excluded %d (%.1fs)",
        root,
        len(validated.records),
        len(validated.report["excluded"]),  # validation's report always lists them
        time.perf_counter() - t0,
    )
    return validated


@stage(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=3600)
def audit(validated: ValidatedDataset, config: RetrainConfig) -> LeakageAudit:
    log, t0 = get_run_logger(), time.perf_counter()
    result = audit_leakage(validated, max_distance=config.leak_max_distance)
    counts, contam = result.report["counts"], result.report["contamination"]
    log.info(
        "leakage audit: %d duplicate groups over %d images; %d copy pairs across splits; "
        "%d of %d official test images are copies of train/val (%s); leak-free test keeps %d (%.1fs)",
        counts["groups"],
        counts["hashed"],
        len(result.report.get("pairs", [])),
        contam["copies_in_train_val"]["any"],
        contam["official_test"],
        ", ".join(f"{k} {v}" for k, v in contam["copies_in_train_val"].items() if k != "any"),
        len(result.leakfree_test),
        time.perf_counter() - t0,
    )
    return result


@stage(**SHORT_RETRIES, cache_policy=STAGE_CACHE, persist_result=True, timeout_seconds=3600)
def pack_and_store(
    validated: ValidatedDataset, leakage: LeakageAudit, config: RetrainConfig, run_id: str, dataset_fingerprint: str
) -> str:
    """Pack into the local content-addressed cache, then upload to datasets/<fp>/<size>/."""
    log, t0 = get_run_logger(), time.perf_counter()
    packed = pack_dataset(
        validated,
        leakage,
        out_dir=dataset_cache_dir(run_id, dataset_fingerprint, config.pack_size),
        split_policy=config.split_policy,
        min_gate_n=config.min_gate_n,
        seed=config.seed,
        folds=config.folds,
    )
    policy = packed.manifest.get("split_policy", {})
    log.info("split policy %s (requested %s): %s", policy.get("used"), policy.get("requested"), policy.get("reason"))
    uploaded = upload_dataset(open_store(config.store_url), packed)
    log.info(
        "packed %s (splits %s) and %s it to %s (%.1fs)",
        packed.dir,
        {k: v["n"] for k, v in packed.manifest.get("splits", {}).items()},
        "uploaded" if uploaded["uploaded"] else "found",
        uploaded["prefix"],
        time.perf_counter() - t0,
    )
    return str(packed.dir)


@stage(cache_policy=NO_CACHE)
def dataset_artifacts(packed_dir: str, run_id: str) -> dict:
    """Tables of what cleaning excluded and which images leak across splits; returns counts."""
    folder = Path(packed_dir)
    cleaning = json.loads((folder / "cleaning_report.json").read_text())
    leakage = json.loads((folder / "leakage_report.json").read_text())
    excluded = cleaning.get("excluded", [])
    skipped = cleaning.get("skipped", [])  # symlinks out of the root, undecodable names: never read
    pairs = leakage.get("pairs", [])
    rows = excluded + [
        {"path": s["path"], "split": "", "class": "", "reason": s["reason"], "detail": s["detail"]} for s in skipped
    ]
    table_artifact(
        f"exclusions-{run_id}",
        rows[:500],
        f"Images excluded by validation ({len(excluded)}) and entries skipped unread "
        f"({len(skipped)}); paths relative to the dataset root",
    )
    table_artifact(
        f"leakage-pairs-{run_id}",
        pairs[:500],
        f"Near-duplicate pairs across splits ({len(pairs)}); their test images are left out of test_clean",
    )
    return {"excluded": len(excluded), "leak_pairs": len(pairs)}
