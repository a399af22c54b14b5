"""The core (boneflow/) must run without Prefect: on a GPU box, in the app, in a plain script."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import boneflow

CORE = Path(boneflow.__file__).parent


def _core_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(CORE)], prefix="boneflow.")]


def test_no_source_file_in_core_imports_prefect():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE.parent)}: {n}" for n in names if n.split(".")[0] == "prefect"]
    assert offenders == []


def test_importing_every_core_module_does_not_load_prefect():
    modules = _core_modules()
    assert "boneflow.cli" in modules and len(modules) > 10
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(len(loaded)); sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
