"""Shared test setup. Parts keep their own fixtures in their folder's conftest.py."""

from __future__ import annotations

import os

# Tests never reach the network: make libraries that phone home stay quiet and fast.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
