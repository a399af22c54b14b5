"""RetrainConfig's fields as command-line options, generated from the model so `boneflow run`,
the UI form (Prefect builds it from the same model) and the README's table cannot drift.

Each field becomes `--kebab-case` (a few keep an older, shorter name: FLAG_NAMES), its help is
the field's description plus its default, a bool becomes `--x/--no-x` and a Literal lists its
choices. Every option defaults to None, meaning "the config's default", so the defaults live
only in RetrainConfig.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional, get_args

import typer

from boneflow.config import RetrainConfig

# Flag names that predate the generated ones; scripts and docs use them.
FLAG_NAMES = {"store_url": "--store"}


def flag_name(field: str) -> str:
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def _value_type(annotation: Any) -> Any:
    """`str | None` → str; anything else (int, bool, a Literal) as it is."""
    args = get_args(annotation)
    rest = [a for a in args if a is not type(None)]
    return rest[0] if len(args) == 2 and len(rest) == 1 else annotation


def _help(description: str | None, default: Any) -> str:
    text = (description or "").strip()
    if isinstance(default, bool):
        default = "on" if default else "off"
    return text if default is None else f"{text} Default: {default}."


def with_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command(config_fields, **own_options)` one option per RetrainConfig field.

    `config_fields` holds only the fields given on the command line; the command's own options
    (e.g. --verbose) come after the generated ones in --help."""
    generated = []  # one keyword-only option per field of RetrainConfig, in the model's order
    for name, info in RetrainConfig.model_fields.items():
        value_type = _value_type(info.annotation)
        flag = flag_name(name)
        decls = f"{flag}/--no-{flag[2:]}" if value_type is bool else flag
        option = typer.Option(None, decls, help=_help(info.description, info.default), show_default=False)
        generated.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[value_type])  # noqa: UP045 value_type is a runtime value
        )
    names = {p.name for p in generated}
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.name != "config_fields"
    ]

    @functools.wraps(command)
    def wrapper(**options: Any) -> Any:
        fields = {k: v for k, v in options.items() if k in names and v is not None}
        return command(fields, **{k: v for k, v in options.items() if k not in names})

    del wrapper.__wrapped__  # Typer must read the generated signature, not the command's own
    wrapper.__signature__ = inspect.Signature(generated + own)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in generated + own}
    return wrapper
