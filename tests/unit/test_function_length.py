"""No function in the core (boneflow/, bench/ aside) is over 60 lines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("long_functions", ROOT / "scripts" / "long_functions.py")
long_functions_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(long_functions_module)


def test_no_core_function_is_over_60_lines():
    found = dict(long_functions_module.long_functions([ROOT / "boneflow"], limit=60))
    assert not found, f"functions over 60 lines (split them): {found}"


def test_the_checker_counts_decorators_and_bodies(tmp_path):
    sample = ROOT / "boneflow" / "_long_sample_for_test.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    try:
        sample.write_text(f"@staticmethod\ndef long_one():\n{body}\n\ndef short_one():\n    return 1\n")
        found = dict(long_functions_module.long_functions([sample], limit=60))
    finally:
        sample.unlink()
    assert found == {"boneflow/_long_sample_for_test.py:long_one": 62}
