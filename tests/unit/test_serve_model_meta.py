"""model.json values read from a store are bounded before they size anything."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from boneflow.demo.store import write_demo_store
from boneflow.serve.errors import ModelNotFoundError
from boneflow.serve.model_meta import check_model_meta
from boneflow.serve.predictor import Predictor

GOOD = {
    "architecture": "resnet18-1ch",
    "num_classes": 2,
    "classes": ["not fractured", "fractured"],
    "preprocessing": {"pack_size": 256, "image_size": 224, "mean": 0.449, "std": 0.226},
    "config": {"image_size": 224},
}


def _with(path: str, value):
    meta = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    target = meta
    for part in parents:
        target = target[part]
    target[leaf] = value
    return meta


@pytest.mark.parametrize(
    "path,value,field",
    [
        ("preprocessing.pack_size", 10**6, "pack_size"),
        ("preprocessing.pack_size", "256", "pack_size"),
        ("preprocessing.pack_size", True, "pack_size"),
        ("preprocessing.image_size", 300, "image_size"),  # larger than pack_size
        ("preprocessing.image_size", 4, "image_size"),
        ("preprocessing.std", 0, "std"),
        ("preprocessing.mean", float("nan"), "mean"),
        ("preprocessing.mean", [0.1, 0.2, 0.3, 0.4], "mean"),
        ("classes", ["a"] * 10**5, "classes"),
        ("classes", ["not fractured", "broken"], "classes"),
        ("classes", ["fractured", "fractured"], "classes"),
        ("classes", ["x" * 1000, "fractured"], "classes"),
        ("classes", ["not fractured", "fractured", "other"], "classes"),
        ("num_classes", 10**9, "num_classes"),
        ("preprocessing", None, "preprocessing"),
    ],
)
def test_out_of_bounds_values_are_refused_naming_the_field(path, value, field):
    with pytest.raises(ModelNotFoundError, match=field):
        check_model_meta(_with(path, value), source="runs/x/model.json")


def test_extra_keys_are_tolerated():
    meta = _with("operating_threshold", 0.31)
    meta["temperature"] = 1.4
    meta["preprocessing"]["eval_transform"] = "center crop"
    assert check_model_meta(meta, source="model.json") is meta


@pytest.mark.parametrize("field,value", [("pack_size", 200_000), ("classes", "many")])
def test_loading_refuses_before_allocating(tmp_path, monkeypatch, field, value):
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "store"
    run_id = write_demo_store(str(store), image_size=64)
    weights, model_json = store / "runs" / run_id / "model.safetensors", tmp_path / "model.json"
    meta = json.loads((store / "runs" / run_id / "model.json").read_text())
    if field == "classes":  # 100k classes: a 200 MB head before the weights are even read
        meta["classes"] = ["fractured"] + [f"c{i}" for i in range(100_000)]
        meta["num_classes"] = len(meta["classes"])
    else:
        meta["preprocessing"]["pack_size"] = value  # a 40 GB decode per request
    model_json.write_text(json.dumps(meta))
    with pytest.raises(ModelNotFoundError, match=f"runs/{run_id}/model.json.*{field}"):
        Predictor.from_files(weights, model_json, run_id=run_id, model_sha256="0" * 64)


def test_an_oversized_model_json_is_not_parsed(tmp_path):
    big = Path(tmp_path / "model.json")
    big.write_text(json.dumps({**GOOD, "padding": "x" * (2 << 20)}))
    with pytest.raises(ModelNotFoundError, match="bytes"):
        Predictor.from_files(tmp_path / "none.safetensors", big, run_id="r", model_sha256="0" * 64)
