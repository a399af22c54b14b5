"""Digests and run ids from a hostile store are data, never paths; the model cache is keyed by
the weights' and model.json's hashes together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.demo.store import write_demo_store
from boneflow.serve.app import XrayApp
from boneflow.serve.errors import ModelNotFoundError
from boneflow.serve.examples import write_examples
from boneflow.serve.predictor import Predictor

runner = CliRunner()


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("BONEFLOW_CACHE", str(root))
    return root


@pytest.fixture()
def store(tmp_path) -> Path:
    path = tmp_path / "store"
    write_demo_store(str(path), image_size=64, seed=0)
    return path


def _sentinel(folder: Path) -> Path:
    """A folder that looks like a cached model, so a cache that trusted the digest would rmtree it."""
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"precious")
    (folder / "model.json").write_text("{}")
    return folder


def _point_champion_at(store: Path, **fields) -> None:
    champion = json.loads((store / "champion.json").read_text())
    champion.update(fields)
    (store / "champion.json").write_text(json.dumps(champion))


def _hostile_digests(tmp_path: Path) -> list[tuple[str, Path]]:
    # cache/models/../../x is tmp_path/x; an absolute value replaces the whole path.
    return [("../../x", _sentinel(tmp_path / "x")), (str(tmp_path / "abs"), _sentinel(tmp_path / "abs"))]


def test_predict_refuses_a_digest_that_is_a_path_and_deletes_nothing(store, cache, tmp_path):
    image = write_examples(tmp_path / "ex", size=96)[0]
    for digest, sentinel in _hostile_digests(tmp_path):
        _point_champion_at(store, model_sha256=digest)
        result = runner.invoke(app, ["predict", str(image), "--store", str(store)])
        assert result.exit_code == 2, result.output
        assert "model_sha256" in result.stderr and "64 lowercase hex digits" in result.stderr
        assert "Traceback" not in result.output
        assert (sentinel / "model.safetensors").read_bytes() == b"precious"


def test_app_refuses_it_at_start_and_keeps_serving_when_it_appears_later(store, cache, tmp_path):
    image = write_examples(tmp_path / "ex", size=96)[0]
    good = XrayApp(str(store))
    first = good.analyse(image).run_id
    for digest, sentinel in _hostile_digests(tmp_path):
        _point_champion_at(store, model_sha256=digest, run_id="20990101T000000Z-abcdef")
        good.follower._retry_at = 0.0  # check the store again now, not after the backoff
        assert good.analyse(image).run_id == first
        assert "champion update failed" in good.model_info()
        with pytest.raises(ModelNotFoundError, match="model_sha256"):
            XrayApp(str(store)).follower.current()
        assert (sentinel / "model.safetensors").read_bytes() == b"precious"


def test_a_run_id_that_is_a_path_is_refused(store, cache, tmp_path):
    sentinel = _sentinel(tmp_path / "y")
    _point_champion_at(store, run_id="../../../y")
    with pytest.raises(ModelNotFoundError, match="run id"):
        Predictor.from_store(str(store))
    assert (sentinel / "model.safetensors").exists()


def test_manifest_digest_that_is_a_path_is_refused(store, cache, tmp_path):
    run_id = json.loads((store / "champion.json").read_text())["run_id"]
    manifest_path = store / "runs" / run_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.safetensors"]["sha256"] = "../../x"
    manifest_path.write_text(json.dumps(manifest))
    sentinel = _sentinel(tmp_path / "x")
    image = write_examples(tmp_path / "ex", size=96)[0]
    result = runner.invoke(app, ["predict", str(image), "--store", str(store), "--run-id", run_id])
    assert result.exit_code == 2, result.output
    assert "manifest.json" in result.stderr and "tampered" in result.stderr
    assert sentinel.exists()


def test_a_changed_model_json_with_the_same_weights_is_not_served_stale(store, cache, tmp_path):
    from boneflow.registry.publish import publish_run
    from boneflow.store import open_store

    run_id = json.loads((store / "champion.json").read_text())["run_id"]
    assert Predictor.from_store(str(store)).mean == pytest.approx(0.449)
    meta = json.loads((store / "runs" / run_id / "model.json").read_text())
    meta["preprocessing"]["mean"] = 0.5  # a corrected model.json, re-published; weights unchanged
    fixed = tmp_path / "model.json"
    fixed.write_text(json.dumps(meta))
    publish_run(open_store(str(store)), run_id, {"model.json": fixed}, code_version={})
    assert Predictor.from_store(str(store)).mean == pytest.approx(0.5)
