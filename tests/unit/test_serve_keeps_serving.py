"""The app keeps serving the last good model through a bad champion or a broken pointer, tells
the page "champion update failed" without internal details, and retries with a backoff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boneflow.demo.store import demo_metrics, write_demo_store
from boneflow.registry.publish import champion_record, promote, publish_run, read_champion
from boneflow.serve.app import XrayApp, build_ui
from boneflow.serve.examples import write_examples
from boneflow.store import open_store
from boneflow.store.keys import new_run_id

# Words that would mean exception text reached the page.
INTERNALS = ("Error", "Traceback", "Expecting", "size mismatch", "safetensors", "/tmp", "cache")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "store"
    write_demo_store(str(path), image_size=64, seed=0)
    return path


@pytest.fixture()
def image(tmp_path) -> Path:
    return write_examples(tmp_path / "ex", size=96)[0]


def _serving(store: Path, image: Path) -> tuple[XrayApp, str, FakeClock]:
    xray_app = XrayApp(str(store))
    clock = FakeClock()
    xray_app.follower.clock = clock
    return xray_app, xray_app.analyse(image).run_id, clock


def _promote_candidate(store: Path, *, weights: bytes, model_json: bytes) -> str:
    """Publish and promote a run through the real publish path (manifest matches the files)."""
    opened = open_store(str(store))
    run_id = new_run_id()
    files = {
        "model.safetensors": weights,
        "model.json": model_json,
        "metrics.json": json.dumps(demo_metrics(run_id)).encode(),
    }
    manifest = publish_run(opened, run_id, files, code_version={})
    record = champion_record(
        run_id=run_id,
        manifest=manifest,
        metrics=demo_metrics(run_id),
        dataset_fingerprint="0" * 16,
        config_fingerprint="0" * 16,
    )
    promote(opened, record, expected_etag=read_champion(opened)[1])
    return run_id


def _good_files(store: Path) -> tuple[bytes, dict]:
    run_id = json.loads((store / "champion.json").read_text())["run_id"]
    folder = store / "runs" / run_id
    return (folder / "model.safetensors").read_bytes(), json.loads((folder / "model.json").read_text())


def _break(store: Path, kind: str) -> None:
    weights, meta = _good_files(store)
    if kind == "garbled champion.json":
        (store / "champion.json").write_text('{"run_id": "2025')
    elif kind == "model.json not JSON":
        _promote_candidate(store, weights=weights, model_json=b"{not json")
    elif kind == "model.json out of bounds":
        meta["preprocessing"]["pack_size"] = 10**6
        _promote_candidate(store, weights=weights, model_json=json.dumps(meta).encode())
    elif kind == "shape mismatch":  # a 3-channel ResNet18 where model.json promises the 1-channel one
        _promote_candidate(store, weights=_three_channel_weights(), model_json=json.dumps(meta).encode())
    elif kind == "truncated safetensors":
        _promote_candidate(store, weights=weights[: len(weights) // 2], model_json=json.dumps(meta).encode())


def _three_channel_weights() -> bytes:
    from safetensors.torch import save
    from torchvision.models import resnet18

    return save({k: v.contiguous() for k, v in resnet18(num_classes=2).state_dict().items()})


KINDS = [
    "garbled champion.json",
    "model.json not JSON",
    "model.json out of bounds",
    "shape mismatch",
    "truncated safetensors",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_update_keeps_the_served_model_and_says_so_without_internals(store, image, kind, caplog):
    xray_app, first, _clock = _serving(store, image)
    _break(store, kind)
    answer = xray_app.analyse(image)
    assert answer.run_id == first and 0 <= answer.prob_fractured <= 1
    info = xray_app.model_info()
    assert "champion update failed" in info and f"still serving run {first}" in info
    assert not [word for word in INTERNALS if word in info], info
    assert "champion update failed" in caplog.text  # the cause goes to the log instead


def test_the_ui_handler_answers_and_shows_the_notice(store, image):
    xray_app, first, _clock = _serving(store, image)
    _break(store, "truncated safetensors")
    handler = next(fn for fn in build_ui(xray_app).fns.values() if fn.api_name == "predict")
    label, overlay, status, info = handler.fn({"path": str(image), "orig_name": image.name})
    assert label is not None and overlay is not None and first in status
    assert "champion update failed" in info


def test_retries_after_a_backoff_not_on_every_request(store, image):
    xray_app, first, clock = _serving(store, image)
    good_pointer = (store / "champion.json").read_bytes()
    _break(store, "garbled champion.json")
    xray_app.analyse(image)
    assert "next check in 5 s" in xray_app.model_info()
    (store / "champion.json").write_bytes(good_pointer)
    fixed = write_demo_store(str(store), image_size=64, seed=3)  # a good champion again
    clock.now += 4  # within the backoff: the store is not read, the old model answers
    assert xray_app.analyse(image).run_id == first
    clock.now += 2
    assert xray_app.analyse(image).run_id == fixed
    assert xray_app.follower.last_error is None and "champion update failed" not in xray_app.model_info()


def test_backoff_doubles_while_the_failure_lasts(store, image):
    xray_app, first, clock = _serving(store, image)
    _break(store, "shape mismatch")
    xray_app.analyse(image)
    clock.now += 5
    xray_app.analyse(image)
    assert "next check in 10 s" in xray_app.follower.last_error
    clock.now += 10
    xray_app.analyse(image)
    assert "next check in 20 s" in xray_app.follower.last_error
    assert xray_app.analyse(image).run_id == first


def test_an_internal_error_never_reaches_the_page(store, image, monkeypatch, caplog):
    from boneflow.serve.app import FAILED

    xray_app, _first, _clock = _serving(store, image)
    served = xray_app.follower.current()

    def boom(_image):
        raise RuntimeError("internal detail /srv/secret/path")

    monkeypatch.setattr(served.predictor, "explain", boom)
    handler = next(fn for fn in build_ui(xray_app).fns.values() if fn.api_name == "predict")
    label, overlay, status, _info = handler.fn({"path": str(image), "orig_name": image.name})
    assert (label, overlay["value"], status) == (None, None, FAILED)
    assert "/srv/secret/path" in caplog.text
