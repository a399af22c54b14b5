"""A throwaway store holding one untrained champion, for the app's benchmark and its tests.

The model is a randomly initialised 1-channel ResNet18 (its answers mean nothing), published
through the retrain flow's own functions into the store layout of docs/ARCHITECTURE.md, so
everything that reads it runs the real path: sha256 checks, the hash-keyed cache, champion reloads.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from boneflow.intake.layout import CLASSES
from boneflow.registry.publish import champion_record, promote, publish_run, read_champion
from boneflow.settings import pack_size_for
from boneflow.store import open_store
from boneflow.store.keys import new_run_id
from boneflow.train.augment import GREY_MEAN, GREY_STD
from boneflow.train.ensemble import MAX_MEMBERS, member_file
from boneflow.train.model import build_model, plain_state_dict, save_model
from boneflow.train.package import complete_model_json


def demo_metrics(run_id: str) -> dict:
    """A metrics.json with placeholder numbers (the model is untrained)."""
    split = {
        "n": 120,
        "accuracy": 0.5,
        "accuracy_ci95": [0.41, 0.59],
        "recall_fractured": 0.5,
        "specificity": 0.5,
        "precision_fractured": 0.5,
        "f1_fractured": 0.5,
        "auroc": 0.5,
        "ece": 0.1,
        "confusion": [[30, 30], [30, 30]],
    }
    return {
        "run_id": run_id,
        "dataset": {"source": "demo", "fingerprint": "0" * 16},
        "splits": {"val": dict(split), "test": dict(split), "test_clean": dict(split)},
        "gate": {"passed": True, "reasons": ["demo store"], "policy": {}, "champion_run_id": None},
    }


def write_demo_store(store_url: str, *, image_size: int = 224, seed: int = 0, members: int = 1) -> str:
    """Publish an untrained model as the champion of `store_url`; return its run id. With
    `members` >= 2 the model is a fold ensemble of that many differently initialised members
    (model.json `members`, train/ensemble.py), laid out as a cross-fitted run publishes it.

    Calling it again on the same store publishes a second run and moves the champion to it."""
    if not 1 <= members <= MAX_MEMBERS:
        raise ValueError(f"write_demo_store: members must be 1..{MAX_MEMBERS}, got {members}")
    store = open_store(store_url)
    run_id = new_run_id()
    torch.manual_seed(seed)
    model = build_model(num_classes=2, pretrained=False)
    meta = {
        "classes": list(CLASSES),
        "preprocessing": {
            "pack_size": pack_size_for(image_size),
            "image_size": image_size,
            "mean": GREY_MEAN,
            "std": GREY_STD,
            "greyscale": True,
            "pad": "centre, black",
        },
        "config": {"image_size": image_size, "seed": seed, "note": "untrained demo model"},
    }
    with tempfile.TemporaryDirectory(prefix="boneflow-demo-") as tmp:
        weights, model_json = save_model(model, Path(tmp), meta=meta)
        extra = [Path(tmp) / member_file(index) for index in range(1, members)]
        for file in extra:
            save_file(plain_state_dict(build_model(num_classes=2, pretrained=False)), str(file))
        if members > 1:
            complete_model_json(Path(tmp), members=[(run_id, index) for index in range(members)])
        metrics = demo_metrics(run_id)
        (Path(tmp) / "metrics.json").write_text(json.dumps(metrics, indent=2))
        files = {p.name: p for p in (weights, model_json, Path(tmp) / "metrics.json", *extra)}
        # Run files, then the manifest, then the champion pointer, as the retrain flow publishes.
        manifest = publish_run(store, run_id, files, code_version={"source": "boneflow demo store"})
        record = champion_record(
            run_id=run_id, manifest=manifest, metrics=metrics, dataset_fingerprint="0" * 16, config_fingerprint="0" * 16
        )
        found = read_champion(store)
        promote(store, record, expected_etag=found[1] if found else None)
    return run_id
