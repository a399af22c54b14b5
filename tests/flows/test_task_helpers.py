"""The small pieces the flows rely on: artifact keys, inlined plots, store links, the stage
cache key, the run id derived from the flow run, per-class rows."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from prefect import flow

from boneflow.config import RetrainConfig
from boneflow.report.run_files import per_class_rows
from boneflow.store.keys import RUN_ID_RE
from tasks.artifacts import artifact_key, inline_images, store_link
from tasks.runtime import _stage_key, run_id_for_current_flow_run

pytestmark = pytest.mark.flows


def test_artifact_key_is_lowercase_digits_dashes():
    key = artifact_key("Report", "20261126T063500Z-abc123", "x_y.png")
    assert re.fullmatch(r"[a-z0-9-]+", key) and key == "report-20261126t063500z-abc123-x-y-png"


def test_inline_images_replaces_only_known_plots(tmp_path):
    png = tmp_path / "roc.png"
    png.write_bytes(b"\x89PNG fake")
    md = inline_images(
        "![roc](roc.png) ![cm](confusion_matrix.png)",
        {"roc.png": png, "confusion_matrix.png": tmp_path / "missing.png"},
    )
    assert "![roc](data:image/png;base64," in md and "![cm](confusion_matrix.png)" in md


def test_store_links(tmp_path):
    assert store_link("s3://bucket/prefix/", "runs/r/report.md") == "s3://bucket/prefix/runs/r/report.md"
    assert store_link(str(tmp_path), "runs/r/a.md") == (tmp_path / "runs/r/a.md").as_uri()
    assert store_link(f"file://{tmp_path}", "x") == (tmp_path / "x").as_uri()


def _key(params: dict, name: str = "fit_model") -> str:
    return _stage_key(SimpleNamespace(task=SimpleNamespace(name=name)), params)


def test_stage_key_follows_data_and_model_config_not_dispatch_or_force():
    base = RetrainConfig(data_dir="/d", store_url="/s")
    params = {"run_id": "r1", "config": base, "dataset_fingerprint": "ab" * 8}
    same = _key(params)
    assert _key({**params, "config": base.model_copy(update={"dispatch": "deployment", "force": True})}) == same
    assert _key({**params, "config": base.model_copy(update={"epochs": 3})}) != same
    assert _key({**params, "dataset_fingerprint": "cd" * 8}) != same
    assert _key({**params, "run_id": "r2"}) != same
    assert _key(params, name="evaluate_candidate") != same
    assert _key({**params, "validated": object()}) == _key({**params, "validated": object()})


def test_run_id_is_a_store_run_id_and_stable_within_a_flow_run():
    @flow
    def twice() -> tuple[str, str, str]:
        from prefect.runtime import flow_run

        return run_id_for_current_flow_run(), run_id_for_current_flow_run(), flow_run.id

    first, second, flow_run_id = twice()
    assert first == second and RUN_ID_RE.match(first)
    assert first.endswith(flow_run_id.replace("-", "")[:6])


def test_per_class_rows_from_confusion():
    rows = per_class_rows({"test": {"confusion": [[8, 2], [1, 9]]}})
    by_class = {r["class"]: r for r in rows}
    assert by_class["fractured"] == {
        "split": "official test",
        "class": "fractured",
        "n": 10,
        "recall": 0.9,
        "precision": round(9 / 11, 4),
    }
    assert by_class["not fractured"]["recall"] == 0.8 and by_class["not fractured"]["n"] == 10
    # under regroup the regrouped test is the judged split: listed once, by its one name
    both = {"test": {"confusion": [[8, 2], [1, 9]]}, "test_clean": {"confusion": [[8, 2], [1, 9]]}}
    regrouped = per_class_rows(both, {"used": "regroup"})
    assert [r["split"] for r in regrouped] == ["regrouped test", "regrouped test"]


def test_training_progress_lines_carry_images_per_second():
    from tasks.training import done_progress_text, epoch_progress_text

    stats = {"epoch": 2, "epochs": 5, "val_acc": 0.71234, "img_per_s": 412.4}
    assert epoch_progress_text(stats) == "epoch 2/5: val_acc 0.712, 412 img/s"
    assert epoch_progress_text({**stats, "img_per_s": float("nan")}) == "epoch 2/5: val_acc 0.712"  # no timing
    history = [{"img_per_s": 400.0}, {"img_per_s": 500.0}, {"img_per_s": float("nan")}]
    assert done_progress_text(history, 3) == "done: 3 epochs, 450 img/s"
    assert done_progress_text([], 0) == "done: 0 epochs"
