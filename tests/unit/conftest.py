"""Fixtures shared by the unit tests' modules."""

from __future__ import annotations

# Fixtures are found by name in a conftest, so importing them here shares them with every module.
from conftest_data import demo, demo_validated  # noqa: F401
