"""Publishing runs, datasets and checkpoints to a store, and promoting the champion.

Order of a publish (DESIGN.md): every run file under `runs/<run_id>/`, then
`runs/<run_id>/manifest.json` (size + sha256 of every object of the run), then - only when the
gate passed, and only through `promote` - the `champion.json` pointer, replaced conditionally
on its ETag. A run whose manifest is missing is incomplete and can never be promoted.

Every download through this module is checked against the recorded sha256; a mismatch raises
IntegrityError naming the key, and the bad bytes never reach the destination path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from boneflow.store.base import Store, sha256_bytes, sha256_file
from boneflow.store.errors import (
    ConflictError,
    IntegrityError,
    ObjectNotFoundError,
    StoreError,
)
from boneflow.store.keys import (
    CHAMPION_KEY,
    MANIFEST_NAME,
    dataset_key,
    dataset_prefix,
    new_run_id,
    run_key,
    run_prefix,
    validate_fingerprint,
    validate_name,
    validate_run_id,
    validate_size,
)

__all__ = [
    "ChampionConflictError", "champion_record", "fetch_checkpoints", "fetch_dataset",
    "fetch_run_file", "new_run_id", "promote", "publish_run", "read_champion", "read_manifest",
    "upload_checkpoint", "upload_dataset",
]

log = logging.getLogger(__name__)

CHECKPOINT_INDEX = "checkpoints/index.json"
DATASET_INDEX = "index.json"  # store-side list of a packed dataset's files, written last


class ChampionConflictError(ConflictError):
    """Another run replaced champion.json between our read and our write."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _load_json(store: Store, key: str, data: bytes) -> dict:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"{key!r} in {store.url} is not valid JSON ({err}); it was written by "
                         "something else or damaged: inspect or delete it.") from None
    if not isinstance(obj, dict):
        raise StoreError(f"{key!r} in {store.url} should hold a JSON object.")
    return obj


def _download_verified(store: Store, key: str, dest: Path, *, size: int, sha256: str) -> Path:
    """get_file into a temp beside `dest`, check size + sha256, then rename into place."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        store.get_file(key, tmp)
        got_size = tmp.stat().st_size
        got_sha = sha256_file(tmp)
        if got_size != size or got_sha != sha256:
            raise IntegrityError(
                f"{key!r} in {store.url} does not match its manifest: expected {size} bytes with "
                f"sha256 {sha256[:16]}..., got {got_size} bytes with sha256 {got_sha[:16]}.... "
                "The object was changed or damaged after publishing; do not use it (re-publish "
                "the run or fetch from a good copy).")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def _local_matches(path: Path, *, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


# --- runs -------------------------------------------------------------------------------------
def publish_run(store: Store, run_id: str, files: Mapping[str, Path | bytes], *,
                code_version: dict | None = None) -> dict:
    """Upload `files` ({name: local path or bytes}) under runs/<run_id>/, then write the manifest.

    Objects already under the run (checkpoints uploaded during training) are listed in the
    manifest too, with the hashes from checkpoints/index.json. Returns the manifest dict.
    """
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
        from boneflow.report import code_version as _code_version

        code_version = _code_version()
    manifest = {
        "run_id": run_id,
        "created_at": _now(),
        "code_version": code_version,
        "files": {name: entries[name] for name in sorted(entries)},
    }
    store.put_bytes(run_key(run_id, MANIFEST_NAME), _json_bytes(manifest))  # last: marks complete
    log.info("published run %s: %d objects under %s%s", run_id, len(entries), store.url,
             run_prefix(run_id))
    return manifest


def _existing_run_objects(store: Store, run_id: str, *, skip: set[str]) -> dict[str, dict]:
    prefix = run_prefix(run_id)
    existing = [k[len(prefix):] for k in store.list(prefix)]
    others = [n for n in existing if n not in skip and n != MANIFEST_NAME]
    if not others:
        return {}
    index = _read_checkpoint_index(store, run_id)
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
    try:
        data = store.get_bytes(key)
    except ObjectNotFoundError:
        raise ObjectNotFoundError(f"Run {run_id} has no {key!r} in {store.url}: it was never "
                                  "published or its publish did not finish.") from None
    manifest = _load_json(store, key, data)
    if manifest.get("run_id") != run_id or not isinstance(manifest.get("files"), dict):
        raise StoreError(f"{key!r} in {store.url} is not a boneflow run manifest for {run_id}.")
    return manifest


def fetch_run_file(store: Store, run_id: str, name: str, dest: Path, *,
                   manifest: dict | None = None) -> Path:
    """Download runs/<run_id>/<name> to `dest` (a file path, or an existing folder), verified
    against the manifest's sha256. Returns the file's path."""
    key = run_key(run_id, name)
    manifest = manifest or read_manifest(store, run_id)
    entry = manifest["files"].get(name)
    if entry is None:
        raise ObjectNotFoundError(f"{key!r} is not listed in run {run_id}'s manifest in "
                                  f"{store.url}; listed: {sorted(manifest['files'])}.")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / name.rsplit("/", 1)[-1]
    return _download_verified(store, key, dest, size=entry["size"], sha256=entry["sha256"])


# --- champion ---------------------------------------------------------------------------------
def read_champion(store: Store) -> tuple[dict, str] | None:
    """(champion dict, etag) or None when no model was ever promoted."""
    found = store.read_with_etag(CHAMPION_KEY)
    if found is None:
        return None
    data, etag = found
    return _load_json(store, CHAMPION_KEY, data), etag


def champion_record(*, run_id: str, manifest: dict, metrics: dict, dataset_fingerprint: str,
                    config_fingerprint: str, model_name: str = "model.safetensors") -> dict:
    """The champion.json content for a published run (metrics: DESIGN's metrics.json)."""
    entry = manifest.get("files", {}).get(model_name)
    if entry is None:
        raise StoreError(f"Run {run_id}'s manifest lists no {model_name!r}; publish the model "
                         "before promoting the run.")
    summary = {
        split: {k: m.get(k) for k in ("n", "accuracy", "accuracy_ci95", "recall_fractured",
                                       "specificity", "auroc") if k in m}
        for split, m in metrics.get("splits", {}).items()
    }
    return {
        "run_id": validate_run_id(run_id),
        "model_sha256": entry["sha256"],
        "metrics": summary,
        "dataset_fingerprint": dataset_fingerprint,
        "config_fingerprint": config_fingerprint,
        "published_at": _now(),
    }


def promote(store: Store, champion: dict, *, expected_etag: str | None) -> str:
    """Replace champion.json with `champion` only if it is still the version read earlier
    (`expected_etag` from read_champion; None = there must be no champion yet).

    Returns the new etag. The run must be fully published (its manifest exists). When another
    run was promoted in between, raises ChampionConflictError: this run stays published and
    unpromoted, and the caller should re-gate against the new champion."""
    run_id = validate_run_id(str(champion.get("run_id", "")))
    for field in ("model_sha256", "dataset_fingerprint"):
        if not champion.get(field):
            raise StoreError(f"champion.{field} is missing; build the pointer with champion_record().")
    manifest = read_manifest(store, run_id)  # a pointer may only name a complete run
    model = manifest["files"].get("model.safetensors")
    if model is not None and model["sha256"] != champion["model_sha256"]:
        raise IntegrityError(f"champion.model_sha256 does not match runs/{run_id}/model.safetensors "
                             "in the manifest; rebuild the pointer from the published manifest.")
    record = dict(champion)
    record.setdefault("published_at", _now())
    try:
        etag = store.put_if(CHAMPION_KEY, _json_bytes(record), etag=expected_etag)
    except ConflictError as err:
        current = None
        with contextlib.suppress(StoreError):
            found = read_champion(store)
            current = found[0].get("run_id") if found else None
        raise ChampionConflictError(
            f"Run {run_id} was published but NOT promoted: {CHAMPION_KEY} in {store.url} changed "
            f"since it was read (now points to {current or 'nothing'}). Another run was promoted "
            f"at the same time; re-run the gate against the new champion. ({err})") from None
    log.info("promoted run %s to champion in %s", run_id, store.url)
    return etag


# --- datasets ---------------------------------------------------------------------------------
def _dataset_files(local_dir: Path) -> list[str]:
    names = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(local_dir).parts):
            names.append(validate_name(path.relative_to(local_dir).as_posix(), max_parts=4))
    return names


def upload_dataset(store: Store, packed_or_dir, fingerprint: str | None = None,
                   size: int | None = None) -> dict:
    """Upload a packed dataset folder to datasets/<fingerprint>/<size>/, then its index.json
    (size + sha256 per file) last. Accepts a PackedDataset (.dir, .fingerprint, .size) or a
    folder plus fingerprint and size. Skips the upload when the store already holds a complete
    copy. Returns {"prefix", "uploaded": bool, "files": {name: {size, sha256}}}."""
    if hasattr(packed_or_dir, "dir"):  # a PackedDataset
        local_dir = Path(packed_or_dir.dir)
        fingerprint = fingerprint or packed_or_dir.fingerprint
        size = size or packed_or_dir.size
    else:
        local_dir = Path(packed_or_dir)
        if fingerprint is None or size is None:
            raise StoreError(f"upload_dataset({local_dir}): pass fingerprint= and size= with a "
                             "folder (or pass the PackedDataset itself).")
    prefix = dataset_prefix(validate_fingerprint(fingerprint), validate_size(size))
    names = _dataset_files(local_dir)
    if DATASET_INDEX in names:
        raise StoreError(f"{local_dir / DATASET_INDEX}: the name {DATASET_INDEX!r} is reserved for "
                         "the store's index of the dataset; rename that file.")
    if not names:
        raise StoreError(f"Dataset folder {local_dir} holds no files; pack the dataset first.")
    files = {n: {"size": (local_dir / n).stat().st_size, "sha256": sha256_file(local_dir / n)} for n in names}
    existing = _read_dataset_index(store, fingerprint, size)
    # Skip only when the stored copy holds exactly these bytes: the same data packed with other
    # settings (min_side, leakage threshold) shares the key and must be replaced, index last.
    if existing == files and all(store.size(dataset_key(fingerprint, size, n)) == e["size"]
                                 for n, e in existing.items()):
        log.info("dataset %s/%s already complete in %s; not uploading", fingerprint, size, store.url)
        return {"prefix": prefix, "uploaded": False, "files": existing}
    for name in names:
        store.put_file(dataset_key(fingerprint, size, name), local_dir / name)
    index = {"fingerprint": fingerprint, "size": size, "created_at": _now(), "files": files}
    store.put_bytes(dataset_key(fingerprint, size, DATASET_INDEX), _json_bytes(index))
    log.info("uploaded dataset %s/%s: %d files to %s", fingerprint, size, len(files), store.url)
    return {"prefix": prefix, "uploaded": True, "files": files}


def _read_dataset_index(store: Store, fingerprint: str, size: int) -> dict | None:
    key = dataset_key(fingerprint, size, DATASET_INDEX)
    try:
        data = store.get_bytes(key)
    except ObjectNotFoundError:
        return None
    index = _load_json(store, key, data)
    if not isinstance(index.get("files"), dict):
        raise StoreError(f"{key!r} in {store.url} has no 'files' table; delete it and re-upload.")
    return index["files"]


def fetch_dataset(store: Store, fingerprint: str, size: int, dest_dir: Path) -> Path:
    """Download datasets/<fingerprint>/<size>/ into dest_dir, every file verified against the
    index; files already present locally with the right hash are kept. Returns dest_dir."""
    files = _read_dataset_index(store, validate_fingerprint(fingerprint), validate_size(size))
    if files is None:
        raise ObjectNotFoundError(f"Dataset {fingerprint}/{size} is not in {store.url} (no "
                                  f"{dataset_key(fingerprint, size, DATASET_INDEX)!r}); upload it "
                                  "with upload_dataset first.")
    dest_dir = Path(dest_dir)
    for name, entry in sorted(files.items()):
        dest = dest_dir.joinpath(*validate_name(name, max_parts=4).split("/"))
        if _local_matches(dest, size=entry["size"], sha256=entry["sha256"]):
            continue
        _download_verified(store, dataset_key(fingerprint, size, name), dest,
                           size=entry["size"], sha256=entry["sha256"])
    return dest_dir


# --- checkpoints ------------------------------------------------------------------------------
def _read_checkpoint_index(store: Store, run_id: str) -> dict:
    key = run_key(run_id, CHECKPOINT_INDEX)
    try:
        data = store.get_bytes(key)
    except ObjectNotFoundError:
        return {}
    index = _load_json(store, key, data)
    return {f"checkpoints/{n}": e for n, e in index.get("files", {}).items()}


def upload_checkpoint(store: Store, run_id: str, path: Path) -> str:
    """Upload one checkpoint file to runs/<run_id>/checkpoints/<name> and record its size and
    sha256 in runs/<run_id>/checkpoints/index.json (written after the file). One training
    process writes a run's checkpoints, so the index needs no conditional write. Returns the key."""
    path = Path(path)
    name = validate_name(path.name, max_parts=1)
    if name == "index.json":
        raise StoreError(f"{path}: 'index.json' is reserved for the checkpoint index.")
    key = run_key(run_id, f"checkpoints/{name}")
    entry = {"size": path.stat().st_size, "sha256": sha256_file(path), "uploaded_at": _now()}
    store.put_file(key, path)
    index = {n.split("/", 1)[1]: e for n, e in _read_checkpoint_index(store, run_id).items()}
    index[name] = entry
    store.put_bytes(run_key(run_id, CHECKPOINT_INDEX),
                    _json_bytes({"run_id": run_id, "files": dict(sorted(index.items()))}))
    return key


def fetch_checkpoints(store: Store, run_id: str, dest_dir: Path, *,
                      latest_only: bool = False) -> list[Path]:
    """Download the run's indexed checkpoints (sorted by name; epoch-NNNN.pt sorts by epoch)
    into dest_dir, each verified. `latest_only` fetches just the last one (enough to resume).
    Returns local paths, sorted; [] when the run has no checkpoints yet."""
    index = _read_checkpoint_index(store, run_id)
    names = sorted(index)
    if latest_only:
        names = names[-1:]
    dest_dir = Path(dest_dir)
    out = []
    for name in names:
        entry = index[name]
        dest = dest_dir / name.split("/", 1)[1]
        if not _local_matches(dest, size=entry["size"], sha256=entry["sha256"]):
            _download_verified(store, run_key(run_id, name), dest,
                               size=entry["size"], sha256=entry["sha256"])
        out.append(dest)
    return out

