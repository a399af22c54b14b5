"""boneflow core: the stages of a retrain run as packages, in the order the data flows (see
docs/ARCHITECTURE.md), over a few shared leaves (settings, config, contracts, errors, atomic
files, hashing).

This package never imports Prefect (tests/unit/test_core_has_no_prefect.py checks it), so it
runs from a plain script, the GPU benchmark, the CLI and the app alike."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__version__ = "0.1.0"


def code_version() -> dict:
    """{"package_version", "git_commit"}: the commit when boneflow runs from a git checkout."""
    commit = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", out.stdout.strip()):
            commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package_version": __version__, "git_commit": commit}
