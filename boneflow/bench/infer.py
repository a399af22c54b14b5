"""`boneflow bench infer`: single-image latency (p50/p95) and batch throughput at the model's size.

Single image = what `boneflow predict` does per file after the model is loaded: decode with
load_xray (the one decode path) → EvalPreset → forward → softmax. Reported with and without
the decode. The model is the store's champion when `store` is given, else a random-init
ResNet18 (latency does not depend on the weights).
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _champion_model(store_url: str):
    from boneflow.errors import BoneflowError
    from boneflow.publish import fetch_run_file, read_champion, read_manifest
    from boneflow.store import open_store
    from boneflow.train.model import load_model

    store = open_store(store_url)
    found = read_champion(store)
    if found is None:
        raise BoneflowError(f"{store_url}: no champion.json yet; run `boneflow run` first or omit --store.")
    run_id = found[0]["run_id"]
    manifest = read_manifest(store, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        weights = fetch_run_file(store, run_id, "model.safetensors", Path(tmp), manifest=manifest)
        info = fetch_run_file(store, run_id, "model.json", Path(tmp), manifest=manifest)
        model, meta = load_model(weights, info)
    return model, meta, run_id


def _percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def bench_infer(*, store: str | None = None, size: int = 224, runs: int = 50, batch_size: int = 64,
                batches: int = 3, seed: int = 0) -> dict:
    from PIL import Image

    from boneflow.data.preprocess import load_xray
    from boneflow.evaluate.predict import predict_proba
    from boneflow.train.device import precision_name
    from boneflow.train.model import build_model
    from boneflow.train.synthetic_packed import bone_images

    run_id = None
    if store:
        model, meta, run_id = _champion_model(store)
        size = int(meta["preprocessing"]["image_size"])
        pack_size = int(meta["preprocessing"]["pack_size"])
    else:
        torch.manual_seed(seed)
        model = build_model().eval()
        pack_size = int(round(size * 8 / 7))
    model = model.to(memory_format=torch.channels_last).eval()
    rng = np.random.default_rng(seed)
    # A JPEG at ~2x the packed side, roughly a downsized radiograph file.
    picture = bone_images(np.array([1]), pack_size * 2, rng)[0]
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()
    decoded = load_xray(jpeg, pack_size)

    def timed(fn) -> list[float]:
        for _ in range(3):  # warm-up: oneDNN builds its kernels for the first shapes
            fn()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return samples

    model_only = timed(lambda: predict_proba(model, decoded, image_size=size, device="cpu"))
    with_decode = timed(lambda: predict_proba(model, load_xray(jpeg, pack_size), image_size=size, device="cpu"))
    batch = np.repeat(decoded[None], batch_size * batches, axis=0)
    predict_proba(model, batch[:batch_size], image_size=size, batch_size=batch_size, device="cpu")
    start = time.perf_counter()
    predict_proba(model, batch, image_size=size, batch_size=batch_size, device="cpu")
    batch_seconds = time.perf_counter() - start
    return {
        "benchmark": "infer",
        "model": f"champion {run_id}" if run_id else "random-init resnet18 (no --store)",
        "size": size,
        "pack_size": pack_size,
        "precision": precision_name(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "single_image": {"preprocessed": _percentiles(model_only), "with_jpeg_decode": _percentiles(with_decode),
                         "runs": runs},
        "batch": {"batch_size": batch_size, "images": len(batch),
                  "img_per_s": round(len(batch) / batch_seconds, 1)},
        "goals": {"single_p50_ms": 15.0},
    }
