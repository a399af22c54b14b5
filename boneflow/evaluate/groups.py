"""Each packed file's duplicate group, read from the pack's splits.json (splits/plan.py)."""

from __future__ import annotations

import json
from pathlib import Path


def split_groups(packed, split: str) -> list[str] | None:
    """Each file's duplicate group in `split`, from the pack's splits.json; None when the pack
    has no splits.json (in-memory splits, packs made before it) or a file is not listed."""
    folder = getattr(packed, "dir", None)
    if folder is None or not (Path(folder) / "splits.json").is_file():
        return None
    listed = json.loads((Path(folder) / "splits.json").read_text()).get("files", {})
    paths = packed.split(split).paths
    if not all(p in listed for p in paths):
        return None
    return [str(listed[p].get("group") or p) for p in paths]
