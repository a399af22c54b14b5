"""Errors of the serving part (predict command, app). Each says what is wrong and what to do."""

from __future__ import annotations

from boneflow.errors import BoneflowError


class ServeError(BoneflowError):
    """Base class for serving errors."""


class NoChampionError(ServeError):
    """The store has no champion.json yet."""


class ModelNotFoundError(ServeError):
    """The requested run or its weights are missing or inconsistent in the store."""


class ImageRejectedError(ServeError):
    """An input that is not a usable image: unreadable, not an image, too large."""
