"""The store interface: a flat key -> bytes space with conditional writes. Keys are relative to
the store root (keys.py); every implementation validates them again, so a bad id can never reach
the file system or the bucket."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from boneflow.hashing import sha256_bytes, sha256_file  # noqa: F401  (re-exported)
from boneflow.store.errors import StoreError


def read_capped(fh: BinaryIO, size: int, key: str, where: str, max_bytes: int | None) -> bytes:
    """All of `fh`, an object of `size` bytes as the store reports it. Over `max_bytes` it is
    refused from `size` before a byte is read (and from what was read, if it grew since)."""
    if max_bytes is None:
        return fh.read()
    if size <= max_bytes:
        data = fh.read(max_bytes + 1)
        if len(data) <= max_bytes:
            return data
        size = len(data)
    raise StoreError(
        f"{key!r} in {where} is {size:,} bytes, over the {max_bytes:,} bytes such an object may have; "
        "it was written by something else or damaged: inspect or delete it."
    )


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object (or leftover temp object) as a listing sees it."""

    key: str  # for temp objects: an id that only `delete_temp` understands
    size: int
    modified: datetime  # timezone-aware UTC: the store's own clock (S3 LastModified, file mtime)


@dataclass(frozen=True)
class SkippedKey:
    """A listed key that does not fit the store's layout: never read or deleted, only reported."""

    key: str  # as listed (it may hold `..`, odd characters or non-UTF-8 bytes as surrogates)
    reason: str


@dataclass
class Listing:
    """A listing split at the moment it is made: valid keys, and what was skipped."""

    objects: builtins.list[ObjectInfo]
    skipped: builtins.list[SkippedKey]


class Store(ABC):
    """What publishing, training and serving need from object storage."""

    url: str  # the URL it was opened with (never holds credentials)

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write the whole object; readers see the old or the new bytes, never a mix."""

    @abstractmethod
    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """Read the whole object; ObjectNotFoundError if missing; `max_bytes` as in read_capped."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file (large files go through a multipart/streaming path)."""

    @abstractmethod
    def get_file(self, key: str, path: Path) -> None:
        """Download to `path` atomically (a crash leaves no half file); parents are created."""

    @abstractmethod
    def scan(self, prefix: str = "") -> Listing:
        """Every object under `prefix` (recursive), each key validated as it is listed: the
        valid ones with size and last-modified time, sorted, and the keys that are not valid
        store keys (`..` parts, odd characters, links leaving a folder store) as `skipped`."""

    def list(self, prefix: str = "") -> builtins.list[str]:
        """The valid keys starting with `prefix` (recursive), sorted."""
        return [o.key for o in self.scan(prefix).objects]

    def empty_folders(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Empty folders under `prefix` (a folder store's leftovers of deletions); none on S3."""
        return []

    def remove_empty_folder(self, key: str) -> None:
        """Remove one folder named by `empty_folders` if it is still empty (S3 has none)."""
        return None

    @abstractmethod
    def temp_objects(self) -> builtins.list[ObjectInfo]:
        """Leftovers of interrupted writes: local `.tmp-*` files, S3 incomplete multipart uploads
        and conditional-write probes. Never listed by `list`; removed with `delete_temp`."""

    @abstractmethod
    def delete_temp(self, temp_id: str) -> None:
        """Remove one leftover named by `temp_objects` (refuses anything that is not one)."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size in bytes, or None if missing (cheap completeness checks)."""

    @abstractmethod
    def read_with_etag(self, key: str, *, max_bytes: int | None = None) -> tuple[bytes, str] | None:
        """(bytes, etag) or None if missing; the etag is what `put_if` compares against."""

    @abstractmethod
    def put_if(self, key: str, data: bytes, *, etag: str | None) -> str:
        """Write only if the object is unchanged: `etag=None` means "only if absent"
        (If-None-Match: *), otherwise "only if its etag is still `etag`" (If-Match).
        Returns the new etag; raises ConflictError when the condition does not hold."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if present."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
