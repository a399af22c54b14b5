"""One decision everywhere in the app: the headline, the status line, the Grad-CAM caption and
the API answer are the decision at model.json's operating threshold, with the calibrated
probability beside it, also when the probability lies between 0.5 and the threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from app_process import running_app
from boneflow.demo.store import write_demo_store
from boneflow.registry.publish import champion_record, promote, publish_run, read_champion
from boneflow.serve.predictor import Predictor
from boneflow.store import open_store

IMAGE_SIZE = 48


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _champion_with(store: Path, *, prob: float, threshold: float, xray: Path) -> tuple[str, float]:
    """Publish and promote a champion that gives `xray` the probability `prob` (its fc bias
    shifted) and decides at `threshold`; returns (run id, the probability it really gives)."""
    run_id = write_demo_store(str(store), image_size=IMAGE_SIZE, seed=3)
    base = Predictor.from_store(str(store), run_id, cache_dir=store.parent / "probe-cache")
    shift = _logit(prob) - _logit(base.predict(xray)["prob_fractured"])
    folder = store / "runs" / run_id
    weights = load_file(folder / "model.safetensors")
    weights["fc.bias"] = weights["fc.bias"].clone()
    weights["fc.bias"][base.positive_index] += shift
    save_file(weights, folder / "model.safetensors")
    meta = {**json.loads((folder / "model.json").read_text()), "threshold": threshold, "temperature": 1.0}
    (folder / "model.json").write_text(json.dumps(meta))
    opened = open_store(str(store))
    names = ("model.safetensors", "model.json", "metrics.json")
    manifest = publish_run(opened, run_id, {n: (folder / n).read_bytes() for n in names}, code_version={})
    record = champion_record(
        run_id=run_id,
        manifest=manifest,
        metrics=json.loads((folder / "metrics.json").read_text()),
        dataset_fingerprint="0" * 16,
        config_fingerprint="0" * 16,
    )
    promote(opened, record, expected_etag=read_champion(opened)[1])
    served = Predictor.from_store(str(store), cache_dir=store.parent / "probe-cache")
    assert served.run_id == run_id
    return run_id, served.predict(xray)["prob_fractured"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("decision") / "store"
    write_demo_store(str(path), image_size=IMAGE_SIZE, seed=0)
    return path


@pytest.fixture(scope="module")
def xray(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "xray.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 64), dtype=np.uint8)).save(path)
    return path


# (probability the champion gives, its operating threshold, the decision): in both cases the
# larger class probability (a 0.5 cut) would say the other class.
CASES = [(0.6, 0.7, "not fractured"), (0.4, 0.3, "fractured")]


def test_the_real_app_answers_with_the_decision_at_the_threshold(store, xray, tmp_path_factory):
    from gradio_client import Client, handle_file

    with running_app(store, tmp_path_factory.mktemp("decision-app")) as url:
        client = Client(url, verbose=False)
        for prob, threshold, decision in CASES:
            run_id, got = _champion_with(store, prob=prob, threshold=threshold, xray=xray)
            assert min(0.5, threshold) < got < max(0.5, threshold), got  # between 0.5 and the threshold
            headline, _overlay, status, info = client.predict(handle_file(str(xray)), api_name="/predict")
            assert headline["label"] == decision, headline
            shown = {c["label"]: c["confidence"] for c in headline["confidences"]}
            assert shown["fractured"] == pytest.approx(got, abs=2e-3)  # the calibrated probability beside it
            assert f"**{decision}** · probability of fracture {shown['fractured']:.3f}" in status
            assert f"operating threshold {threshold:.3f}" in status and run_id in info


@pytest.mark.parametrize("prob,threshold,decision", CASES)
def test_the_heatmap_caption_and_the_headline_say_the_decision(store, xray, prob, threshold, decision):
    from boneflow.serve.app import XrayApp, build_ui

    _champion_with(store, prob=prob, threshold=threshold, xray=xray)
    demo = build_ui(XrayApp(str(store), cache_dir=store.parent / "ui-cache"))
    handler = next(fn for fn in demo.fns.values() if fn.api_name == "predict")
    headline, heatmap, status, _info = handler.fn({"path": str(xray), "orig_name": xray.name})
    label_box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "prediction")
    assert label_box.postprocess(headline).label == decision  # what the browser's headline shows
    assert f"decision: {decision} (p = " in heatmap["label"] and f"threshold {threshold:.3f}" in heatmap["label"]
    assert status.startswith(f"**{decision}**")
