"""Shared by publish.py and transfer.py: JSON objects in the store, and downloads checked
against a recorded size + sha256 (bad bytes never reach the destination path)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from boneflow.atomic import atomic_path
from boneflow.store.base import Store, sha256_file
from boneflow.store.errors import IntegrityError, InvalidKeyError, ObjectNotFoundError, StoreError
from boneflow.store.keys import validate_name, validate_sha256

# Largest store JSON read (README, "Security model"). These objects hold a few dozen entries and
# are a few kB: the caps leave room for 100x that, and refuse a damaged or hostile one from its size.
MAX_CHAMPION_BYTES = 64 * 1024
MAX_INDEX_BYTES = 4 * 1024 * 1024  # manifests, dataset and checkpoint indexes


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def read_index(store: Store, key: str) -> dict | None:
    """The JSON object at `key` (a manifest or index, refused over MAX_INDEX_BYTES), None if missing."""
    try:
        return load_json(store, key, store.get_bytes(key, max_bytes=MAX_INDEX_BYTES))
    except ObjectNotFoundError:
        return None


def load_json(store: Store, key: str, data: bytes) -> dict:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(
            f"{key!r} in {store.url} is not valid JSON ({err}); it was written by "
            "something else or damaged: inspect or delete it."
        ) from None
    if not isinstance(obj, dict):
        raise StoreError(f"{key!r} in {store.url} should hold a JSON object.")
    return obj


def check_file_entries(store: Store, key: str, files: dict, *, max_parts: int) -> dict:
    """The {name: {size, sha256}} table of a manifest or index, every name, size and digest
    checked before any of them is used (names become paths, digests cache folders)."""
    for name, entry in files.items():
        try:
            validate_name(name, max_parts=max_parts)
            if not isinstance(entry, dict):
                raise InvalidKeyError(f"entry {name!r} is not an object with size and sha256.")
            validate_sha256(entry.get("sha256"), what=f"sha256 of {name!r}")
            size = entry.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidKeyError(f"size of {name!r} is {size!r}, not a byte count.")
        except InvalidKeyError as err:
            raise StoreError(
                f"{key!r} in {store.url} is damaged or was tampered with: {err} "
                "Do not use this run or dataset; re-publish it."
            ) from None
    return files


def download_verified(store: Store, key: str, dest: Path, *, size: int, sha256: str) -> Path:
    """get_file into a temp beside `dest`, check size + sha256, then rename into place."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        store.get_file(key, tmp)
        got_size = tmp.stat().st_size
        got_sha = sha256_file(tmp)
        if got_size != size or got_sha != sha256:
            raise IntegrityError(
                f"{key!r} in {store.url} does not match its manifest: expected {size} bytes with "
                f"sha256 {sha256[:16]}..., got {got_size} bytes with sha256 {got_sha[:16]}.... "
                "The object was changed or damaged after publishing; do not use it (re-publish "
                "the run or fetch from a good copy)."
            )
    return dest


def local_matches(path: Path, *, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256
