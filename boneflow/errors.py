"""Errors a user can act on. Each message names the file or field, what is wrong, and what to do."""


class BoneflowError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""
