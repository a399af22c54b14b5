"""The demo store (the app benchmark's and the UI tests' champion) as a fold ensemble."""

from __future__ import annotations

import json

import pytest

from boneflow.demo.store import write_demo_store
from boneflow.serve.predictor import Predictor


def test_members_publish_a_fold_ensemble_that_the_predictor_serves(tmp_path):
    store = tmp_path / "store"
    run_id = write_demo_store(str(store), image_size=32, members=3)
    meta = json.loads((store / "runs" / run_id / "model.json").read_text())
    assert [m["weights"] for m in meta["members"]] == [
        "model.safetensors",
        "member-1.safetensors",
        "member-2.safetensors",
    ]
    predictor = Predictor.from_store(str(store), cache_dir=tmp_path / "cache")
    assert type(predictor.model).__name__ == "FoldEnsemble" and len(predictor.model.members) == 3
    write_demo_store(str(tmp_path / "single"), image_size=32)  # members=1: a plain model
    single = Predictor.from_store(str(tmp_path / "single"), cache_dir=tmp_path / "cache")
    assert type(single.model).__name__ == "ResNet"


@pytest.mark.parametrize("members", [0, 11])
def test_members_out_of_range_are_refused(tmp_path, members):
    with pytest.raises(ValueError, match=r"members must be 1\.\.10"):
        write_demo_store(str(tmp_path / "store"), image_size=32, members=members)
