"""Errors a user can act on. Each message names the file or field, what is wrong, and what to do."""

import errno


class BoneflowError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""


class OutOfSpaceError(BoneflowError, OSError):
    """A write failed because the file system holding it is full (or over quota). An OSError
    with errno ENOSPC, so code that handles the OS error still sees one."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


class GateError(BoneflowError):
    """The metrics handed to the gate lack what the policy needs."""
