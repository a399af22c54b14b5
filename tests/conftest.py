"""Shared test setup. Parts keep their own fixtures in their folder's conftest.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

# Tests never reach the network: make libraries that phone home stay quiet and fast.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("boneflow", "tasks", "flows")


def _source_status() -> str | None:
    """`git status --porcelain` of the source folders (milliseconds), or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", *SOURCE_DIRS],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def source_tree_untouched():
    """Tests write under tmp_path, never into the source folders: fail the session if any file
    under boneflow/, tasks/ or flows/ appeared, changed or went away while it ran."""
    before = _source_status()
    yield
    after = _source_status()
    if before is not None and after is not None and after != before:
        pytest.fail(f"the tests changed the source tree (git status before:\n{before}\nafter:\n{after})")
