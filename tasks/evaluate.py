"""Evaluation stages: the candidate and the champion scored on the same packed splits, the
plots, the augmentation preview, and the gate."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from boneflow.config import RetrainConfig
from boneflow.data.pack import load_packed
from boneflow.gate import GatePolicy, decide
from boneflow.publish import fetch_run_file, read_champion
from boneflow.store import open_store
from tasks.artifacts import artifact_key, png_data_uri
from tasks.retry import retry_unless_deterministic
from tasks.runtime import STAGE_CACHE, run_work_dir

PLOT_NAMES = ("confusion_matrix.png", "roc.png", "learning_curves.png", "augmentation_preview.png")


@task(cache_policy=STAGE_CACHE, persist_result=True, result_serializer="json")
def augmentation_preview(run_id: str, config: RetrainConfig, packed_dir: str) -> str:
    """What the network sees: packed train images above, their augmented versions below."""
    from prefect.artifacts import create_image_artifact

    from boneflow.evaluate.plots import plot_augmentation_preview
    from boneflow.train.augment import TrainPreset

    import numpy as np

    # a writable copy of a few images: torch warns on read-only memory maps
    images = np.array(load_packed(Path(packed_dir)).split("train").images[:8])
    path = plot_augmentation_preview(images,
                                     TrainPreset(crop_size=config.image_size),
                                     run_work_dir(run_id, "plots") / "augmentation_preview.png",
                                     seed=config.seed)
    create_image_artifact(png_data_uri(path), key=artifact_key("augmentation-preview", run_id),
                          description="Top: packed train images. Bottom: after the training augmentation.")
    return str(path)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=retry_unless_deterministic, result_serializer="json")
def read_champion_pointer(config: RetrainConfig) -> dict | None:
    found = read_champion(open_store(config.store_url))
    if found is None:
        get_run_logger().info("no champion in %s yet", config.store_url)
        return None
    champion, etag = found
    get_run_logger().info("champion is run %s (dataset %s, config %s)", champion["run_id"],
                          champion.get("dataset_fingerprint", "?")[:12], champion.get("config_fingerprint"))
    return {**champion, "etag": etag}


def _load_and_score(model_dir: Path, config: RetrainConfig, packed_dir: str):
    from boneflow.evaluate.predict import evaluate_splits
    from boneflow.train.model import load_model

    model, _ = load_model(model_dir / "model.safetensors", model_dir / "model.json")
    return evaluate_splits(model, load_packed(Path(packed_dir)), image_size=config.image_size)


@task(cache_policy=STAGE_CACHE, persist_result=True, timeout_seconds=3600, result_serializer="json")
def evaluate_candidate(run_id: str, config: RetrainConfig, packed_dir: str, trained: dict) -> dict:
    """{split: metrics} for val, test and test_clean, plus the plots (local paths)."""
    from boneflow.evaluate.plots import plot_confusion_matrix, plot_learning_curves, plot_roc

    log, t0, store = get_run_logger(), time.perf_counter(), open_store(config.store_url)
    model_dir = run_work_dir(run_id, "model")
    for name in ("model.safetensors", "model.json"):  # the training may have run on another machine
        store.get_file(f"runs/{run_id}/{name}", model_dir / name)
    splits, raw = _load_and_score(model_dir, config, packed_dir)
    plots_dir = run_work_dir(run_id, "plots")
    labels, probs = raw["test_clean"]
    plots = {"confusion_matrix.png": plot_confusion_matrix(splits["test_clean"]["confusion"],
                                                           ["not fractured", "fractured"],
                                                           plots_dir / "confusion_matrix.png"),
             "roc.png": plot_roc(labels, probs, plots_dir / "roc.png"),
             "learning_curves.png": plot_learning_curves(trained["history"], plots_dir / "learning_curves.png")}
    log.info("candidate %s: %s (%.1fs)", run_id, ", ".join(
        f"{s} acc {m['accuracy']:.3f} (n={m['n']})" for s, m in splits.items()), time.perf_counter() - t0)
    return {"splits": splits, "plots": {k: str(v) for k, v in plots.items()}}


@task(cache_policy=STAGE_CACHE, persist_result=True, timeout_seconds=3600, retries=2,
      retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_deterministic, result_serializer="json")
def evaluate_champion(run_id: str, config: RetrainConfig, packed_dir: str, champion: dict | None,
                      dataset_root: str) -> dict | None:
    """The champion re-scored on this run's splits (a fair comparison), or None without one.
    Each model is scored with its own preprocessing: a champion trained at other sizes gets the
    same evaluation images decoded again at its pack size and cropped to its image size."""
    if champion is None:
        return None
    from boneflow.evaluate.rescore import evaluate_with_own_preprocessing
    from boneflow.train.model import load_model

    log, t0 = get_run_logger(), time.perf_counter()
    store, model_dir = open_store(config.store_url), run_work_dir(run_id, "champion")
    for name in ("model.safetensors", "model.json"):  # sha256-checked against its manifest
        fetch_run_file(store, champion["run_id"], name, model_dir / name)
    model, meta = load_model(model_dir / "model.safetensors", model_dir / "model.json")
    data = load_packed(Path(packed_dir))
    if meta["preprocessing"]["pack_size"] != data.size:
        log.info("champion %s was packed at %d px, this run at %d: decoding the evaluation images "
                 "again at its size", champion["run_id"], meta["preprocessing"]["pack_size"], data.size)
    splits, _ = evaluate_with_own_preprocessing(model, meta, data, Path(dataset_root))
    log.info("champion %s re-scored: test_clean acc %.3f (%.1fs)", champion["run_id"],
             splits["test_clean"]["accuracy"], time.perf_counter() - t0)
    return {"run_id": champion["run_id"], "splits": splits}


@task(cache_policy=NO_CACHE, result_serializer="json")
def gate(config: RetrainConfig, candidate: dict, champion: dict | None) -> dict:
    decision = decide(candidate["splits"], champion["splits"] if champion else None,
                      GatePolicy.from_config(config),
                      champion_run_id=champion["run_id"] if champion else None)
    get_run_logger().info("%s", decision.message)
    return {**decision.to_dict(), "message": decision.message}
