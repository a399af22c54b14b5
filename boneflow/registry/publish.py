"""Publishing runs to a store and promoting the champion (README, "The store"): every run file,
then the manifest, whose presence marks the run complete (a run without one can never be
promoted), then - only through `promote` - champion.json, replaced conditionally on its ETag.
Downloads are checked against the manifest (verified.py); datasets and checkpoints move through
transfer.py.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path

from boneflow.registry.transfer import read_checkpoint_index
from boneflow.registry.verified import (
    MAX_CHAMPION_BYTES,
    check_file_entries,
    download_verified,
    json_bytes,
    load_json,
    read_index,
    utc_now,
)
from boneflow.store.base import Store, sha256_bytes, sha256_file
from boneflow.store.errors import ConflictError, IntegrityError, ObjectNotFoundError, StoreError
from boneflow.store.keys import (
    CHAMPION_KEY,
    CHECKPOINTS_FOLDER,
    MANIFEST_NAME,
    run_key,
    run_prefix,
    validate_name,
    validate_run_id,
    validate_sha256,
)

log = logging.getLogger(__name__)


class ChampionConflictError(ConflictError):
    """Another run replaced champion.json between our read and our write."""


# --- runs -------------------------------------------------------------------------------------
def publish_run(
    store: Store, run_id: str, files: Mapping[str, Path | bytes], *, code_version: dict | None = None
) -> dict:
    """Upload `files` ({name: local path or bytes}) under runs/<run_id>/, then write the manifest
    (returned), which also lists the objects already under the run (checkpoints uploaded during
    training, with the hashes from checkpoints/index.json)."""
    validate_run_id(run_id)
    names = sorted(files)
    for name in names:  # validate everything before the first upload
        validate_name(name)
        if name == MANIFEST_NAME:
            raise StoreError(f"File name {name!r} is reserved for the run manifest; rename it.")
        value = files[name]
        if not isinstance(value, (bytes, bytearray)) and not Path(value).is_file():
            raise StoreError(f"Run file {name!r}: {value} is not a file; cannot publish run {run_id}.")
    entries: dict[str, dict] = {}
    for name in names:
        value = files[name]
        key = run_key(run_id, name)
        if isinstance(value, (bytes, bytearray)):
            data = bytes(value)
            store.put_bytes(key, data)
            entries[name] = {"size": len(data), "sha256": sha256_bytes(data)}
        else:
            path = Path(value)
            entries[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
            store.put_file(key, path)
    entries.update(_existing_run_objects(store, run_id, skip=set(entries)))
    if code_version is None:
        from boneflow import code_version as _code_version

        code_version = _code_version()
    manifest = {
        "run_id": run_id,
        "created_at": utc_now(),
        "code_version": code_version,
        "files": {name: entries[name] for name in sorted(entries)},
    }
    store.put_bytes(run_key(run_id, MANIFEST_NAME), json_bytes(manifest))  # last: marks complete
    log.info("published run %s: %d objects under %s%s", run_id, len(entries), store.url, run_prefix(run_id))
    return manifest


def _existing_run_objects(store: Store, run_id: str, *, skip: set[str]) -> dict[str, dict]:
    prefix = run_prefix(run_id)
    existing = [k[len(prefix) :] for k in store.list(prefix)]
    others = [n for n in existing if n not in skip and n != MANIFEST_NAME]
    if not others:
        return {}
    index = {f"{CHECKPOINTS_FOLDER}/{name}": e for name, e in read_checkpoint_index(store, run_id).items()}
    out = {}
    for name in others:
        if name in index:
            out[name] = {"size": index[name]["size"], "sha256": index[name]["sha256"]}
        else:  # small files (the index itself, leftovers): hash what is there now
            data = store.get_bytes(prefix + name)
            out[name] = {"size": len(data), "sha256": sha256_bytes(data)}
    return out


def read_manifest(store: Store, run_id: str) -> dict:
    key = run_key(run_id, MANIFEST_NAME)
    manifest = read_index(store, key)
    if manifest is None:
        raise ObjectNotFoundError(
            f"Run {run_id} has no {key!r} in {store.url}: it was never published or its publish did not finish."
        )
    if manifest.get("run_id") != run_id or not isinstance(manifest.get("files"), dict):
        raise StoreError(f"{key!r} in {store.url} is not a boneflow run manifest for {run_id}.")
    check_file_entries(store, key, manifest["files"], max_parts=2)
    return manifest


def fetch_run_file(store: Store, run_id: str, name: str, dest: Path, *, manifest: dict | None = None) -> Path:
    """Download runs/<run_id>/<name> to `dest` (a file path, or an existing folder), verified
    against the manifest's sha256. Returns the file's path."""
    key = run_key(run_id, name)
    manifest = manifest or read_manifest(store, run_id)
    entry = manifest["files"].get(name)
    if entry is None:
        raise ObjectNotFoundError(
            f"{key!r} is not listed in run {run_id}'s manifest in {store.url}; listed: {sorted(manifest['files'])}."
        )
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / name.rsplit("/", 1)[-1]
    return download_verified(store, key, dest, size=entry["size"], sha256=entry["sha256"])


# --- champion ---------------------------------------------------------------------------------
def read_champion(store: Store) -> tuple[dict, str] | None:
    """(champion dict, etag) or None when no model was ever promoted."""
    found = store.read_with_etag(CHAMPION_KEY, max_bytes=MAX_CHAMPION_BYTES)
    return None if found is None else (load_json(store, CHAMPION_KEY, found[0]), found[1])


def champion_record(
    *,
    run_id: str,
    manifest: dict,
    metrics: dict,
    dataset_fingerprint: str,
    config_fingerprint: str,
) -> dict:
    """The champion.json content for a published run (metrics: DESIGN's metrics.json)."""
    entry = manifest.get("files", {}).get("model.safetensors")
    if entry is None:
        raise StoreError(
            f"Run {run_id}'s manifest lists no 'model.safetensors'; publish the model before promoting the run."
        )
    summary = {
        split: {
            k: m.get(k)
            for k in ("n", "accuracy", "accuracy_ci95", "recall_fractured", "specificity", "auroc")
            if k in m
        }
        for split, m in metrics.get("splits", {}).items()
    }
    return {
        "run_id": validate_run_id(run_id),
        "model_sha256": entry["sha256"],
        "metrics": summary,
        "dataset_fingerprint": dataset_fingerprint,
        "config_fingerprint": config_fingerprint,
        "published_at": utc_now(),
    }


def promote(store: Store, champion: dict, *, expected_etag: str | None) -> str:
    """Replace champion.json with `champion` (its run fully published) only if it is still the
    version read earlier (`expected_etag` from read_champion; None: no champion yet), returning
    the new etag. If another run was promoted in between, raises ChampionConflictError: this run
    stays published and unpromoted, and the caller should re-gate against the new champion."""
    run_id = validate_run_id(str(champion.get("run_id", "")))
    for field in ("model_sha256", "dataset_fingerprint"):
        if not champion.get(field):
            raise StoreError(f"champion.{field} is missing; build the pointer with champion_record().")
    validate_sha256(champion["model_sha256"], what="champion.model_sha256")
    manifest = read_manifest(store, run_id)  # a pointer may only name a complete run
    model = manifest["files"].get("model.safetensors")
    if model is not None and model["sha256"] != champion["model_sha256"]:
        raise IntegrityError(
            f"champion.model_sha256 does not match runs/{run_id}/model.safetensors "
            "in the manifest; rebuild the pointer from the published manifest."
        )
    record = {"published_at": utc_now(), **champion}
    try:
        etag = store.put_if(CHAMPION_KEY, json_bytes(record), etag=expected_etag)
    except ConflictError as err:
        current = None
        with contextlib.suppress(StoreError):
            found = read_champion(store)
            current = found[0].get("run_id") if found else None
        raise ChampionConflictError(
            f"Run {run_id} was published but NOT promoted: {CHAMPION_KEY} in {store.url} changed "
            f"since it was read (now points to {current or 'nothing'}). Another run was promoted "
            f"at the same time; re-run the gate against the new champion. ({err})"
        ) from None
    log.info("promoted run %s to champion in %s", run_id, store.url)
    return etag
