"""List functions longer than a limit (default 60 lines, decorators and docstring included).

    python scripts/long_functions.py [--max 60] [paths...]   (default path: boneflow, bench/ aside)

Exits 1 when any is found, so it can gate CI; tests/unit/test_function_length.py uses `long_functions`.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXCLUDE = ("boneflow/bench/",)


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def long_functions(
    paths: list[Path], *, limit: int = 60, exclude: tuple[str, ...] = DEFAULT_EXCLUDE
) -> list[tuple[str, int]]:
    """("relative/path.py:qualname-ish", lines) for every function over `limit` lines, longest first."""
    found = []
    for base in paths:
        for file in sorted(base.rglob("*.py") if base.is_dir() else [base]):
            rel = file.resolve().relative_to(ROOT).as_posix()
            if any(rel.startswith(prefix) for prefix in exclude):
                continue
            for node in _functions(ast.parse(file.read_text(), filename=str(file))):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - first + 1
                if lines > limit:
                    found.append((f"{rel}:{node.name}", lines))
    return sorted(found, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=60, help="longest allowed function, in lines")
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "boneflow"])
    args = parser.parse_args(argv)
    found = long_functions(args.paths, limit=args.max)
    for name, lines in found:
        print(f"{lines:4d}  {name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
