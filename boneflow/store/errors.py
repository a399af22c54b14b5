"""Errors raised by the store and by publishing. Each names the key or URL, what went wrong and
what to do next. None of them ever carries credentials."""

from __future__ import annotations

from boneflow.errors import BoneflowError


class StoreError(BoneflowError):
    """Something about the store itself: bad URL, missing bucket, unreachable server."""


class InvalidKeyError(StoreError, ValueError):
    """A key or id that could escape the store layout (`..`, absolute path, odd characters)."""


class ObjectNotFoundError(StoreError, KeyError):
    """The key does not exist in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StoreUnavailableError(StoreError):
    """The store could not be reached after boto3's bounded retries."""


class ConflictError(StoreError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class ConditionalWritesUnsupportedError(StoreError):
    """The S3 server ignores or rejects If-Match / If-None-Match, so promotion cannot be atomic."""


class IntegrityError(StoreError):
    """Downloaded bytes do not match the size/sha256 recorded in a manifest."""
