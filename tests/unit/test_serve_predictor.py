"""Predictor: loading from the store (sha256, cache by hash, run selection) and preprocessing
identical to evaluation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from boneflow.demo.store import write_demo_store
from boneflow.errors import BoneflowError
from boneflow.serve.errors import ModelNotFoundError, NoChampionError
from boneflow.serve.predictor import Predictor

IMAGE_SIZE = 64  # small network input keeps these tests fast


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("BONEFLOW_CACHE", str(root))
    return root


@pytest.fixture()
def store(tmp_path) -> Path:
    path = tmp_path / "store"
    write_demo_store(str(path), image_size=IMAGE_SIZE, seed=1)
    return path


def _xray_png(path: Path, *, size=(90, 70), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)).save(path)
    return path


def _champion(store: Path) -> dict:
    return json.loads((store / "champion.json").read_text())


def _cache_folder(store: Path, cache: Path) -> Path:
    """models/<weights sha256>-<model.json sha256>: the cache key holds both."""
    champion = _champion(store)
    manifest = json.loads((store / "runs" / champion["run_id"] / "manifest.json").read_text())
    return cache / "models" / f"{champion['model_sha256']}-{manifest['files']['model.json']['sha256']}"


def test_champion_prediction_has_label_probability_and_run_id(store, cache, tmp_path):
    predictor = Predictor.from_store(str(store))
    out = predictor.predict(_xray_png(tmp_path / "a.png"))
    assert set(out) == {"label", "prob_fractured", "run_id"}
    assert out["run_id"] == _champion(store)["run_id"]
    assert 0.0 <= out["prob_fractured"] <= 1.0
    assert out["label"] == ("fractured" if out["prob_fractured"] >= 0.5 else "not fractured")


def test_preprocessing_and_probability_equal_evaluation_on_the_packed_image(tmp_path, cache):
    """Pack a tiny dataset with the real data path, then compare, for one test image, what
    evaluation computes from its packed row with what the predictor computes from the file."""
    from boneflow.demo.dataset import dataset_root, write_demo_dataset
    from boneflow.duplicates.leakage import audit_leakage
    from boneflow.evaluate.predict import predict_proba
    from boneflow.intake.validate import validate_dataset
    from boneflow.splits.pack import pack_dataset
    from boneflow.train.augment import EvalPreset

    store = tmp_path / "store"
    write_demo_store(str(store), image_size=IMAGE_SIZE, seed=2)
    predictor = Predictor.from_store(str(store))
    write_demo_dataset(tmp_path / "data", n=24, seed=3, defects=False)
    root = dataset_root(tmp_path / "data")
    validated = validate_dataset(root, workdir=tmp_path / "work", pack_size=predictor.pack_size, min_side=16, workers=1)
    packed = pack_dataset(validated, audit_leakage(validated), out_dir=tmp_path / "packed")
    test = packed.split("test")
    assert len(test.paths) > 0
    row = np.array(test.images[0])
    image_path = root / test.paths[0]

    evaluation_input = EvalPreset(crop_size=predictor.image_size)(torch.from_numpy(row)[None])
    assert torch.equal(predictor.preprocess(image_path), evaluation_input)
    evaluation_prob = predict_proba(predictor.model, row[None], image_size=predictor.image_size, device="cpu")[0]
    assert predictor.predict(image_path)["prob_fractured"] == pytest.approx(evaluation_prob, abs=1e-5)


def test_model_is_cached_by_sha256_and_reused_without_the_store(store, cache, tmp_path):
    sha = _champion(store)["model_sha256"]
    Predictor.from_store(str(store))
    cached = _cache_folder(store, cache) / "model.safetensors"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    # The store's copy disappears: the cache still serves the model.
    run_id = _champion(store)["run_id"]
    (store / "runs" / run_id / "model.safetensors").unlink()
    assert Predictor.from_store(str(store)).run_id == run_id
    assert not list((cache / "models").glob(".*")), "no staging folders left behind"


def test_damaged_cache_is_fetched_again(store, cache):
    sha = _champion(store)["model_sha256"]
    Predictor.from_store(str(store))
    cached = _cache_folder(store, cache) / "model.safetensors"
    cached.write_bytes(b"garbage")
    Predictor.from_store(str(store))
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha


def test_tampered_weights_in_the_store_are_refused(store, cache):
    run_id = _champion(store)["run_id"]
    weights = store / "runs" / run_id / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    weights.write_bytes(bytes(data))
    with pytest.raises(BoneflowError, match="does not match its manifest"):
        Predictor.from_store(str(store))
    assert not _cache_folder(store, cache).exists()


def test_run_id_selects_a_published_run(store, cache):
    first = _champion(store)["run_id"]
    second = write_demo_store(str(store), image_size=IMAGE_SIZE, seed=5)
    assert _champion(store)["run_id"] == second != first
    assert Predictor.from_store(str(store)).run_id == second
    assert Predictor.from_store(str(store), run_id=first).run_id == first


def test_unknown_run_id_and_missing_champion_are_clear(store, cache, tmp_path):
    with pytest.raises(ModelNotFoundError, match="20990101T000000Z-abcdef"):
        Predictor.from_store(str(store), run_id="20990101T000000Z-abcdef")
    empty = tmp_path / "empty-store"
    empty.mkdir()
    with pytest.raises(NoChampionError, match=r"no champion in .*empty-store; run `boneflow run` first"):
        Predictor.from_store(str(empty))


def test_reads_a_store_written_by_hand_in_the_design_layout(tmp_path, cache, monkeypatch):
    """Independent of publish.py: the layout of docs/ARCHITECTURE.md written directly, torchvision resnet18
    with a 1-channel conv1 saved with safetensors."""
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    torch.manual_seed(0)
    net = resnet18(num_classes=2)
    net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    run_id = "20260101T000000Z-0a0b0c"
    run = tmp_path / "store" / "runs" / run_id
    run.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(run / "model.safetensors"))
    (run / "model.json").write_text(
        json.dumps(
            {
                "architecture": "resnet18-1ch",
                "num_classes": 2,
                "classes": ["not fractured", "fractured"],
                "preprocessing": {"pack_size": 73, "image_size": 64, "mean": 0.449, "std": 0.226},
            }
        )
    )
    (run / "metrics.json").write_text(json.dumps({"run_id": run_id, "splits": {}}))
    files = {
        p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in sorted(run.iterdir())
    }
    (run / "manifest.json").write_text(json.dumps({"run_id": run_id, "files": files}))
    (tmp_path / "store" / "champion.json").write_text(
        json.dumps({"run_id": run_id, "model_sha256": files["model.safetensors"]["sha256"]})
    )

    monkeypatch.setenv("BONEFLOW_PRECISION", "fp32")  # compare with the plain fp32 network
    predictor = Predictor.from_store(str(tmp_path / "store"))
    with torch.inference_mode():
        expected = torch.softmax(net.eval()(predictor.preprocess(_xray_png(tmp_path / "b.png"))), 1)[0, 1].item()
    assert predictor.predict(tmp_path / "b.png")["prob_fractured"] == pytest.approx(expected, abs=1e-6)


def test_incomplete_champion_pointer_is_a_clear_error(store, cache):
    (store / "champion.json").write_text(json.dumps({"run_id": _champion(store)["run_id"]}))
    with pytest.raises(ModelNotFoundError, match="lacks run_id or model_sha256"):
        Predictor.from_store(str(store))
