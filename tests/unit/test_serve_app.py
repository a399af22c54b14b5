"""The app's handler (without a browser): answers, rejections, champion reloads, model info."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boneflow.demo.store import write_demo_store
from boneflow.serve.app import XrayApp
from boneflow.serve.champion import metrics_markdown
from boneflow.serve.errors import ImageRejectedError, NoChampionError
from boneflow.serve.examples import AppExamples, write_examples
from boneflow.serve.uploads import UploadLimits


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "store"
    write_demo_store(str(path), image_size=64, seed=0)
    return path


@pytest.fixture()
def example(tmp_path) -> Path:
    return write_examples(tmp_path / "ex", size=120)[0]


def test_answer_has_label_probability_overlay_and_model_info(store, example):
    xray_app = XrayApp(str(store))
    answer = xray_app.analyse(example)
    assert answer.label in ("fractured", "not fractured")
    assert answer.overlay.shape == (64, 64, 3) and answer.overlay.dtype == np.uint8
    conf = answer.confidences()
    assert conf["fractured"] == answer.prob_fractured and abs(sum(conf.values()) - 1) < 1e-6
    # The app and `boneflow predict` agree on the same file.
    assert answer.prob_fractured == pytest.approx(answer.served.predictor.predict(example)["prob_fractured"], abs=2e-3)
    info = xray_app.model_info()
    assert answer.run_id in info and "accuracy (95% CI)" in info and "0.410–0.590" in info


@pytest.mark.parametrize("case", ["text", "empty", "bytes", "pixels"])
def test_rejections_say_what_is_wrong(store, tmp_path, example, case):
    limits = UploadLimits(max_bytes=50_000, max_pixels=300 * 300)
    path = tmp_path / "upload.png"
    expected = {"text": "not an image", "empty": "empty", "bytes": "MiB limit", "pixels": "pixel limit"}[case]
    if case == "text":
        path.write_text("<html>hello</html>")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "bytes":
        rng = np.random.default_rng(0)  # noise does not compress: > 50 kB
        Image.fromarray(rng.integers(0, 256, (250, 250), dtype=np.uint8)).save(path)
    else:
        Image.new("L", (400, 400)).save(path)  # tiny file, too many pixels
    with pytest.raises(ImageRejectedError, match=expected):
        XrayApp(str(store), limits=limits).analyse(path)


def test_truncated_image_is_rejected_not_crashed(store, tmp_path, example):
    path = tmp_path / "cut.jpg"
    Image.open(example).convert("RGB").save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageRejectedError, match="cut.jpg"):
        XrayApp(str(store)).analyse(path)


def test_reloads_when_the_champion_changes(store, example):
    xray_app = XrayApp(str(store))
    first = xray_app.analyse(example).run_id
    assert xray_app.analyse(example).served is xray_app.follower.current()  # no reload without change
    second = write_demo_store(str(store), image_size=64, seed=7)
    assert second != first
    assert xray_app.analyse(example).run_id == second


def test_keeps_serving_when_the_new_champion_is_broken(store, example):
    xray_app = XrayApp(str(store))
    first = xray_app.analyse(example).run_id
    second = write_demo_store(str(store), image_size=64, seed=7)
    weights = store / "runs" / second / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")  # damaged after publishing
    assert xray_app.analyse(example).run_id == first
    assert "could not be loaded" in xray_app.model_info() and second in xray_app.follower.last_error


def test_no_champion(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoChampionError, match="run `boneflow run` first"):
        XrayApp(str(tmp_path / "empty")).follower.current()


def test_metrics_markdown_without_metrics(store):
    served = XrayApp(str(store)).follower.current()
    served.metrics = None
    assert "published no metrics.json" in metrics_markdown(served)


def test_ui_builds_and_its_handler_answers(store, example, tmp_path):
    from boneflow.serve.app import build_ui

    xray_app = XrayApp(str(store))
    demo = build_ui(xray_app, examples=AppExamples(paths=[example], labels=["fractured"], title="Examples"))
    handler = next(fn for fn in demo.fns.values() if fn.api_name == "predict")
    assert handler.preprocess is False  # the original upload bytes reach our checks
    label, overlay, status, info = handler.fn({"path": str(example), "orig_name": example.name})
    assert {c["label"] for c in label["confidences"]} == {"fractured", "not fractured"}
    assert overlay["value"].shape == (64, 64, 3)
    assert "probability of fracture" in status and "Model run" in info
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    with pytest.warns(UserWarning, match="not an image"):  # gr.Warning's toast, outside a request
        label, overlay, status, _ = handler.fn({"path": str(bad), "orig_name": "bad.png"})
    assert label is None and overlay["value"] is None
    assert "Image rejected" in status and "bad.png: not an image" in status
    assert handler.fn(None)[0] is None
