"""One rule for how every `boneflow` command fails: its exit code and its one `error: ...` line
on stderr (README, "Command line", has the table). `build_app` gives the whole app
`ErrorHandlingGroup`, so a command just raises (a BoneflowError for what a user can fix) and
never handles exit codes itself."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from boneflow.errors import BoneflowError

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_REJECTED = 3
EXIT_INTERRUPTED = 130
DEBUG_ENV = "BONEFLOW_DEBUG"

# Errors whose message already tells the user what to fix.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    BoneflowError,
    ValidationError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


class SettingsError(BoneflowError):
    """Settings given on the command line that the config refuses (names the flags)."""


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT if isinstance(error, BAD_INPUT_ERRORS) else EXIT_ERROR


def describe_validation_error(error: ValidationError, name: Callable[[str], str] = str) -> str:
    """`invalid settings: <name(field)>: <problem>; ...` (`name` turns a field into a flag)."""
    problems = "; ".join(f"{name(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}" for e in error.errors())
    return f"invalid settings: {problems}"


def message_for(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    if isinstance(error, OSError) and isinstance(error, BAD_INPUT_ERRORS) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, BAD_INPUT_ERRORS):
        return str(error)
    return f"unexpected {type(error).__name__}: {error} (set {DEBUG_ENV}=1 to see the traceback)"


def print_error(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


class ErrorHandlingGroup(TyperGroup):
    """The `boneflow` app's group: every command, nested ones too, runs inside `invoke`."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as error:
            # typer.Exit, Abort and the usage errors (vendored click in typer >= 0.2x, click
            # before): Typer itself turns them into an exit code and its own message.
            if type(error).__module__.split(".")[0] in ("typer", "click"):
                raise
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                traceback.print_exception(error)
            print_error(message_for(error))
            raise typer.Exit(exit_code_for(error)) from None
