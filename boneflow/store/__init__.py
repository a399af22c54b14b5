"""Object storage for runs, datasets and the champion pointer.

`open_store(url)` picks the implementation from the URL: a plain path or `file://...` gives a
LocalStore (the default), `s3://bucket/prefix` an S3Store. boto3 is imported only for S3.
"""

from __future__ import annotations

import re

from boneflow.store.base import Store
from boneflow.store.errors import (
    ConditionalWritesUnsupportedError,
    ConflictError,
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from boneflow.store.keys import CHAMPION_KEY, dataset_key, new_run_id, run_key
from boneflow.store.local import LocalStore

__all__ = [
    "CHAMPION_KEY",
    "ConditionalWritesUnsupportedError",
    "ConflictError",
    "IntegrityError",
    "InvalidKeyError",
    "LocalStore",
    "ObjectNotFoundError",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "dataset_key",
    "new_run_id",
    "open_store",
    "run_key",
]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(url: str, **s3_options) -> Store:
    """Open the store named by `url`. `s3_options` go to S3Store (endpoint_url, max_attempts,
    connect_timeout, read_timeout, multipart_threshold, ...)."""
    if not url or not str(url).strip():
        raise StoreError("Store URL is empty; give a folder path, file:///path or s3://bucket/prefix.")
    url = str(url)
    match = _SCHEME_RE.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        from boneflow.store.s3 import S3Store

        return S3Store(url, **s3_options)
    if s3_options:
        raise StoreError(f"Options {sorted(s3_options)} only apply to s3:// stores, not {url!r}.")
    if scheme in ("", "file"):
        return LocalStore(url)
    raise StoreError(
        f"Store URL {url!r}: unknown scheme {scheme!r}. Use a folder path, file:///path or s3://bucket/prefix."
    )
