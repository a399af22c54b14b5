"""`boneflow bench infer`: single-image latency (p50/p95) and batch throughput at the model's size,
ours vs the seed's predict path in the same run, plus the app's end-to-end latency ("app").

Single image = what `boneflow predict` does per file after the model is loaded: decode with
load_xray (the one decode path) → EvalPreset → forward → softmax. Reported with and without
the decode. The model is the store's champion when `store` is given, else a random-init
ResNet18 (latency does not depend on the weights).
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch
from PIL import Image

from boneflow.bench.app_latency import app_latency, timed
from boneflow.bench.notebook_baseline import seed_eval_transform, seed_model, seed_predict
from boneflow.demo.bones import bone_images
from boneflow.demo.copies import jpeg_bytes
from boneflow.errors import BoneflowError
from boneflow.evaluate.predict import predict_proba
from boneflow.intake.decode import load_xray
from boneflow.settings import pack_size_for
from boneflow.train.device import place_model, precision_name
from boneflow.train.ensemble import FoldEnsemble
from boneflow.train.model import build_model


def _percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def _latency(fn, runs: int) -> dict:
    return _percentiles(timed(fn, runs=runs)[0])


def _at_thread_counts(counts: list[int], measure) -> tuple[dict, dict]:
    """{str(count): measure()} with torch at each thread count (restored afterwards), and the
    headline: the result at torch's default count (what predict and the app use unless told)."""
    default = torch.get_num_threads()
    by_threads = {}
    try:
        for count in counts:
            torch.set_num_threads(count)
            by_threads[str(count)] = measure()
    finally:
        torch.set_num_threads(default)
    return by_threads, by_threads.get(str(default)) or next(iter(by_threads.values()))


def _ratio(seed: float, ours: float) -> float:
    return round(seed / ours, 2) if ours > 0 else float("nan")


def bench_infer(
    *,
    store: str | None = None,
    size: int = 224,
    runs: int = 50,
    batch_size: int = 64,
    batches: int = 3,
    seed: int = 0,
    thread_counts: list[int],
    app: bool = True,
    members: int = 5,
) -> dict:
    """Ours vs the seed's predict path (the result's `ours_path` / `seed_path` say what each runs)
    on the same JPEG, in this process, at each of `thread_counts`; the headline figures are at
    torch's default count. With `members` >= 2, the "ensemble" section: a fold ensemble of that
    many beside one member."""
    run_id = None
    if store:  # the champion as served (a fold ensemble when it is one), from the app's checked cache
        from boneflow.serve.predictor import NoChampionError, Predictor

        try:
            champion = Predictor.from_store(store)
        except NoChampionError:
            raise BoneflowError(f"{store}: no champion.json yet; run `boneflow run` first or omit --store.") from None
        model, run_id = champion.model, champion.run_id
        size, pack_size = champion.image_size, champion.pack_size
    else:
        torch.manual_seed(seed)
        model = build_model().eval()
        pack_size = pack_size_for(size)
    model = place_model(model, torch.device("cpu")).eval()
    baseline = seed_model(seed)
    seed_transform = seed_eval_transform(size)
    rng = np.random.default_rng(seed)
    # A JPEG at ~2x the packed side, roughly a downsized radiograph file.
    jpeg = jpeg_bytes(Image.fromarray(bone_images(np.array([1]), pack_size * 2, rng)[0]), 90)
    decoded = load_xray(jpeg, pack_size)
    seed_input = seed_transform(Image.open(io.BytesIO(jpeg)).convert("RGB")).unsqueeze(0)

    def seed_forward(x: torch.Tensor) -> None:
        with torch.no_grad():
            torch.softmax(baseline(x), dim=1)

    def single_image() -> dict:
        ours_pre = _latency(lambda: predict_proba(model, decoded, image_size=size, device="cpu"), runs)
        ours_dec = _latency(
            lambda: predict_proba(model, load_xray(jpeg, pack_size), image_size=size, device="cpu"), runs
        )
        seed_pre = _latency(lambda: seed_forward(seed_input), runs)
        seed_dec = _latency(lambda: seed_predict(baseline, io.BytesIO(jpeg), seed_transform), runs)
        return {
            "ours": {"preprocessed": ours_pre, "with_jpeg_decode": ours_dec},
            "seed": {"preprocessed": seed_pre, "with_jpeg_decode": seed_dec},
            "p50_ratio_with_decode": _ratio(seed_dec["p50_ms"], ours_dec["p50_ms"]),
            "p50_ratio_preprocessed": _ratio(seed_pre["p50_ms"], ours_pre["p50_ms"]),
        }

    default_threads = torch.get_num_threads()
    by_threads, headline = _at_thread_counts(thread_counts, single_image)

    # Batch throughput at the default thread count; preprocessing included for ours (EvalPreset
    # on uint8), already done for the seed (its per-image PIL transforms are the single-image cost).
    batch = np.repeat(decoded[None], batch_size * batches, axis=0)
    predict_proba(model, batch[:batch_size], image_size=size, batch_size=batch_size, device="cpu")
    start = time.perf_counter()
    predict_proba(model, batch, image_size=size, batch_size=batch_size, device="cpu")
    ours_batch = len(batch) / (time.perf_counter() - start)
    seed_batch_input = seed_input.expand(batch_size, -1, -1, -1).contiguous()
    seed_forward(seed_batch_input)
    start = time.perf_counter()
    for _ in range(batches):
        seed_forward(seed_batch_input)
    seed_batch = batch_size * batches / (time.perf_counter() - start)

    goals = {"single_p50_ms": 15.0, "app_p50_ms": 50.0}
    precision = precision_name(torch.device("cpu"))
    result: dict = {
        "benchmark": "infer",
        "model": f"champion {run_id}" if run_id else "random-init resnet18 (no --store)",
        "size": size,
        "pack_size": pack_size,
        "precision": precision,
        "ours_path": f"load_xray -> EvalPreset -> 1-ch resnet18, channels_last, inference_mode, {precision} autocast",
        "seed_path": "PIL RGB -> Resize/ToTensor/Normalize -> 3-ch resnet18 fp32 NCHW, no_grad",
        "torch_threads": default_threads,
        "single_image": {**headline, "runs": runs, "threads": default_threads},
        "single_image_by_threads": by_threads,
        "batch": {
            "batch_size": batch_size,
            "images": len(batch),
            "threads": default_threads,
            "ours_img_per_s": round(ours_batch, 1),
            "seed_img_per_s": round(seed_batch, 1),
            "ratio": _ratio(ours_batch, seed_batch),
        },
        "goals": goals,
    }
    if app:
        app_by_threads, app_headline = _at_thread_counts(
            thread_counts, lambda: app_latency(store_url=store, n=runs, size=size)
        )
        by_count = {k: {"p50_ms": v["p50_ms"], "p95_ms": v["p95_ms"]} for k, v in app_by_threads.items()}
        result["app"] = {**app_headline, "by_threads": by_count}
    if members >= 2:
        result["ensemble"] = _ensemble_section(
            model, members, jpeg=jpeg, pack_size=pack_size, size=size, runs=runs, seed=seed, store=store, app=app
        )
        goals.update({"ensemble_p50_ratio": 4.0, "ensemble_app_p50_ratio": 2.0})
    return result


def _ensemble_section(
    model, members: int, *, jpeg: bytes, pack_size: int, size: int, runs: int, seed: int, store: str | None, app: bool
) -> dict:
    """The fold ensemble beside one member in the same run, both with JPEG decode, timed in
    alternation (so a neighbour's load falls on both alike), at torch's current thread count.
    The ensemble is the champion's when it is one (its member 0 the single), else `members`
    random-init members (the single is the first). The app side times the app's path on a
    demo store holding `members` members against one holding a single model."""
    ensemble: torch.nn.Module
    if isinstance(model, FoldEnsemble):
        ensemble, single, k = model, model.members[0], len(model.members)
    else:
        torch.manual_seed(seed + 1)
        others = [build_model().eval() for _ in range(members - 1)]
        ensemble = place_model(FoldEnsemble([model, *others]), torch.device("cpu")).eval()
        single, k = model, members

    def one(net) -> None:
        predict_proba(net, load_xray(jpeg, pack_size), image_size=size, device="cpu")

    single_s, ensemble_s = timed(lambda: one(single), lambda: one(ensemble), runs=runs)
    out: dict = {
        "members": k,
        "what": "one image with JPEG decode: load_xray -> EvalPreset -> forward; the ensemble decodes once",
        "threads": torch.get_num_threads(),
        "single_member": _percentiles(single_s),
        "ensemble": _percentiles(ensemble_s),
    }
    out["p50_ratio"] = _ratio(out["ensemble"]["p50_ms"], out["single_member"]["p50_ms"])
    if app and store is None:
        single_app = app_latency(n=runs, size=size)
        ensemble_app = app_latency(n=runs, size=size, members=k)
        out["app_single_model"] = {key: single_app[key] for key in ("p50_ms", "p95_ms", "members")}
        out["app_ensemble"] = {key: ensemble_app[key] for key in ("p50_ms", "p95_ms", "members")}
        out["app_p50_ratio"] = _ratio(ensemble_app["p50_ms"], single_app["p50_ms"])
    return out
