"""Per-epoch checkpoints `epoch-NNNN.pt` in a caller-given directory (README, "Decisions worth
knowing": Checkpoints), written with `boneflow.atomic` (a crash leaves only a hidden `.tmp-`
file, never read).

The naming (`checkpoint_epoch` / `by_epoch`) is shared with `boneflow.registry.transfer` for the
store's runs/<run_id>/checkpoints/, so both order and prune by epoch number (epoch-10000.pt
follows epoch-9999.pt). Reads use `torch.load(weights_only=True)`, so contents must be tensors
and plain Python types.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from boneflow.atomic import atomic_output

# torch is imported inside save/load: the store side (transfer.py, on the CPU pool) reads
# checkpoint names through this module and should not pay torch's import for it.

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "settings", "history")
KEEP = 2  # checkpoints kept (each holds the best weights so far): a corrupted latest leaves the previous


def checkpoint_epoch(name: str) -> int | None:
    """The epoch a checkpoint file name stands for, or None when `name` is not one."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def by_epoch(names: Iterable[str]) -> list[str]:
    """The checkpoint names among `names`, oldest epoch first; other names are left out."""
    numbered = [(epoch, name) for name in names if (epoch := checkpoint_epoch(name)) is not None]
    return [name for _, name in sorted(numbered)]


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return Path(directory) / f"epoch-{epoch:04d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every epoch-NNNN.pt in directory, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(epoch, p) for p in directory.iterdir() if (epoch := checkpoint_epoch(p.name)) is not None and p.is_file()]
    return sorted(found)


def save_checkpoint(state: dict, directory: Path) -> Path:
    """Atomically write state (must contain `epoch`) as epoch-NNNN.pt; prune to the last KEEP."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(directory, int(state["epoch"]))
    with atomic_output(final) as handle:
        torch.save(state, handle)
    for _, old in list_checkpoints(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return final


def latest_checkpoint(directory: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads completely, or None. Unreadable ones are skipped."""
    import torch

    for _, path in reversed(list_checkpoints(directory)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
                raise ValueError(f"not a boneflow checkpoint (needs keys {REQUIRED_KEYS})")
            return path, state
        except Exception as exc:  # truncated zip, bad pickle opcode, missing keys: all "not complete"
            log.warning("skipping unreadable checkpoint %s: %s", path, exc)
    return None
