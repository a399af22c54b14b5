"""`predict` and the app use the threshold and temperature stored in model.json; a model.json
without them serves as before (0.5, 1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boneflow.demo.store import write_demo_store
from boneflow.serve.app import XrayApp
from boneflow.serve.predictor import Predictor

IMAGE_SIZE = 48


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "store"
    write_demo_store(str(path), image_size=IMAGE_SIZE, seed=0)
    return path


@pytest.fixture()
def xray(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "xray.png"
    Image.fromarray(rng.integers(0, 256, (80, 64), dtype=np.uint8)).save(path)
    return path


def _champion_files(store: Path) -> tuple[Path, Path, str]:
    run_id = json.loads((store / "champion.json").read_text())["run_id"]
    return store / "runs" / run_id / "model.safetensors", store / "runs" / run_id / "model.json", run_id


def _predictor_with(store: Path, tmp_path: Path, **keys) -> Predictor:
    weights, model_json, run_id = _champion_files(store)
    meta = {**json.loads(model_json.read_text()), **keys}
    edited = tmp_path / f"model-{len(list(tmp_path.glob('model-*.json')))}.json"
    edited.write_text(json.dumps(meta))
    return Predictor.from_files(weights, edited, run_id=run_id, model_sha256="0" * 64)


def test_stored_threshold_flips_the_label_of_predict(store, tmp_path, xray):
    plain = _predictor_with(store, tmp_path)  # demo model.json has no threshold: 0.5
    prob = plain.predict(xray)["prob_fractured"]
    assert plain.operating_point.threshold == 0.5
    assert plain.predict(xray)["label"] == ("fractured" if prob >= 0.5 else "not fractured")
    strict = _predictor_with(store, tmp_path, threshold=0.99)
    lenient = _predictor_with(store, tmp_path, threshold=0.01)
    assert prob < 0.99 and prob > 0.01  # an untrained model is unsure
    assert strict.predict(xray)["label"] == "not fractured"
    assert lenient.predict(xray)["label"] == "fractured"
    assert strict.predict(xray)["prob_fractured"] == prob  # the threshold moves the label only


def test_stored_temperature_changes_the_probability_shown(store, tmp_path, xray):
    plain = _predictor_with(store, tmp_path).predict(xray)["prob_fractured"]
    flat = _predictor_with(store, tmp_path, temperature=1000.0)
    assert abs(flat.predict(xray)["prob_fractured"] - 0.5) < abs(plain - 0.5) / 100 + 1e-4
    seen = flat.explain(xray)  # the app's path (Grad-CAM) applies it too
    assert seen.prob_fractured == pytest.approx(flat.predict(xray)["prob_fractured"], abs=2e-3)


def _publish_champion_with(store: Path, **keys) -> str:
    """A new champion whose model.json carries `keys` (new weights, so no cache can hold it)."""
    from boneflow.registry.publish import champion_record, promote, publish_run, read_champion
    from boneflow.store import open_store

    opened = open_store(str(store))
    run_id = write_demo_store(str(store), image_size=IMAGE_SIZE, seed=7)  # publishes and promotes
    folder = store / "runs" / run_id
    meta = {**json.loads((folder / "model.json").read_text()), **keys}
    (folder / "model.json").write_text(json.dumps(meta))
    files = {name: folder / name for name in ("model.safetensors", "model.json", "metrics.json")}
    staged = {name: path.read_bytes() for name, path in files.items()}
    manifest = publish_run(opened, run_id, staged, code_version={"source": "test"})
    record = champion_record(
        run_id=run_id,
        manifest=manifest,
        metrics=json.loads(staged["metrics.json"]),
        dataset_fingerprint="0" * 16,
        config_fingerprint="0" * 16,
    )
    promote(opened, record, expected_etag=read_champion(opened)[1])
    return run_id


@pytest.mark.parametrize("threshold,label", [(0.999, "not fractured"), (0.001, "fractured")])
def test_the_app_uses_the_champions_stored_threshold(store, xray, threshold, label):
    run_id = _publish_champion_with(store, threshold=threshold)
    answer = XrayApp(str(store)).analyse(xray)
    assert answer.run_id == run_id and answer.label == label


@pytest.mark.parametrize("threshold,label", [(0.999, "not fractured"), (0.001, "fractured")])
def test_boneflow_predict_uses_the_champions_stored_threshold(store, xray, tmp_path, threshold, label):
    from typer.testing import CliRunner

    from boneflow.cli.main import app

    run_id = _publish_champion_with(store, threshold=threshold)
    result = CliRunner().invoke(app, ["predict", str(xray), "--store", str(store), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert (line["run_id"], line["label"]) == (run_id, label)
