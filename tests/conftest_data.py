"""Shared helpers for the data tests: one small demo dataset and its validation, built once per
test process (decoding is the slow part) and shared read-only between test modules.

Import with `from conftest_data import ...` (pytest's `pythonpath` holds tests/); the demo
fixtures are shared through tests/unit/conftest.py."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_CACHE: dict = {}
DEMO_N = 80


def tree_digest(root: Path) -> dict[str, str]:
    """{relpath: sha256} of every file under root (for source-unchanged checks)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(w: int, h: int) -> np.ndarray:
    """A deterministic uint8 test picture: horizontal ramp plus a bright block."""
    arr = np.tile(np.linspace(0, 200, w, dtype=np.float32), (h, 1))
    arr[h // 4 : h // 2, w // 4 : w // 2] = 250
    return arr.astype(np.uint8)


@pytest.fixture
def demo(tmp_path_factory):
    """(path, planted) of a small demo set, written once per process."""
    if "demo" not in _CACHE:
        from boneflow.demo.dataset import write_demo_dataset

        path = tmp_path_factory.getbasetemp() / "demo-shared"
        planted = write_demo_dataset(path, n=DEMO_N, seed=3)
        _CACHE["demo"] = (path, planted)
    return _CACHE["demo"]


@pytest.fixture
def demo_validated(demo, tmp_path_factory):
    """(path, planted, digest before, ValidatedDataset, LeakageAudit) for the shared demo set."""
    if "validated" not in _CACHE:
        from boneflow.demo.dataset import dataset_root
        from boneflow.duplicates.leakage import audit_leakage
        from boneflow.intake.validate import validate_dataset

        path, planted = demo
        before = tree_digest(path)
        work = tmp_path_factory.getbasetemp() / "demo-shared-work"
        validated = validate_dataset(dataset_root(path), workdir=work, pack_size=64, workers=2)
        audit = audit_leakage(validated)  # the default threshold (of the 256-bit hash)
        _CACHE["validated"] = (path, planted, before, validated, audit)
    return _CACHE["validated"]
