"""Print the README's Configuration table from RetrainConfig's fields (paste it over the old one).

    PYTHONPATH=. python scripts/config_table.py

tests/unit/test_config_cli.py fails when README.md and this output differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import annotated_types as at

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boneflow.cli.options import flag_name  # noqa: E402
from boneflow.config import RetrainConfig  # noqa: E402

_BOUNDS = (
    (at.Ge, "ge", "≥"),
    (at.Gt, "gt", ">"),
    (at.Le, "le", "≤"),
    (at.Lt, "lt", "<"),
    (at.MinLen, "min_length", "len ≥"),
)


def _bounds(metadata: list) -> str:
    found = [
        f"{sign} {getattr(item, attr)}" for kind, attr, sign in _BOUNDS for item in metadata if isinstance(item, kind)
    ]
    return ", ".join(found) or "–"


def config_table() -> str:
    rows = ["| field | flag | default | bounds | what |", "|---|---|---|---|---|"]
    for name, info in RetrainConfig.model_fields.items():
        flag = flag_name(name)
        if info.annotation is bool:
            flag = f"{flag}/--no-{flag[2:]}"
        description = " ".join((info.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | `{flag}` | `{info.default}` | {_bounds(info.metadata)} | {description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(config_table())
