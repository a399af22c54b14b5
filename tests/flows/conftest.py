"""Flows under `prefect_test_harness` (a temporary SQLite-backed API), started once per session
(~8 s) and shared by every test here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory):
    os.environ["BONEFLOW_WORK_DIR"] = str(tmp_path_factory.mktemp("work"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from boneflow.demo.dataset import write_demo_dataset

    path = tmp_path_factory.mktemp("demo")
    write_demo_dataset(path, n=100, seed=3)
    return path


@pytest.fixture
def tiny_config(demo_data, tmp_path):
    """RetrainConfig factory: 32 px, one epoch, random init, floors at 0 (min_gate_n too: the demo
    test split is small), a fresh folder store."""
    from boneflow.config import RetrainConfig

    def make(**overrides) -> RetrainConfig:
        fields = dict(
            data_dir=str(demo_data),
            store_url=str(tmp_path / "store"),
            image_size=32,
            epochs=1,
            batch_size=32,
            pretrained=False,
            workers=2,
            min_accuracy=0.0,
            min_recall=0.0,
            max_regression=1.0,
            min_gate_n=0,
            folds=1,  # one model per run; the cross-fitting tests ask for folds themselves
        )
        return RetrainConfig(**{**fields, **overrides})

    return make
