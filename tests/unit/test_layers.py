"""The layers cli → flows → tasks → boneflow hold: import-linter's contracts (pyproject.toml)
pass, and the core runs without Prefect (on a GPU box, in the app, in a plain script)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import boneflow

ROOT = Path(__file__).resolve().parents[2]
CORE = Path(boneflow.__file__).parent


def _core_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(CORE)], prefix="boneflow.")]


def test_the_core_contract_forbids_prefect_flows_and_tasks():
    # Guards the guard: weakening the contract must be a visible edit to this test too.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    core = [c for c in contracts if c["type"] == "forbidden" and c["source_modules"] == ["boneflow"]]
    assert core and set(core[0]["forbidden_modules"]) >= {"prefect", "flows", "tasks"}
    assert not core[0].get("ignore_imports")


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": str(lint_imports.parent)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_importing_every_core_module_does_not_load_prefect():
    modules = _core_modules()
    assert "boneflow.cli.main" in modules and len(modules) > 10
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.') "
        "or m.split('.')[0] in ('flows', 'tasks'))\n"
        "print(loaded); sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
