"""Evaluation stages: the candidate and the champion scored on the same packed splits (each at
its own operating point), the plots, the augmentation preview, and the gate."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from boneflow.config import RetrainConfig
from boneflow.data.layout import CLASSES
from boneflow.data.pack import load_packed
from boneflow.evaluate.paired import paired_from_predictions
from boneflow.gate import decide
from boneflow.publish import fetch_run_file, read_champion
from boneflow.store import open_store
from tasks.artifacts import artifact_key, png_data_uri
from tasks.retry import retry_unless_deterministic
from tasks.runtime import STAGE_CACHE, run_work_dir

PLOT_NAMES = ("confusion_matrix.png", "roc.png", "learning_curves.png", "augmentation_preview.png")


@task(cache_policy=STAGE_CACHE, persist_result=True, result_serializer="json")
def augmentation_preview(run_id: str, config: RetrainConfig, packed_dir: str) -> str:
    """What the network sees: packed train images above, their augmented versions below."""
    import numpy as np
    from prefect.artifacts import create_image_artifact

    from boneflow.evaluate.plots import plot_augmentation_preview
    from boneflow.train.augment import TrainPreset

    # a writable copy of a few images: torch warns on read-only memory maps
    images = np.array(load_packed(Path(packed_dir)).split("train").images[:8])
    path = plot_augmentation_preview(
        images,
        TrainPreset(crop_size=config.image_size),
        run_work_dir(run_id, "plots") / "augmentation_preview.png",
        seed=config.seed,
    )
    create_image_artifact(
        png_data_uri(path),
        key=artifact_key("augmentation-preview", run_id),
        description="Top: packed train images. Bottom: after the training augmentation.",
    )
    return str(path)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_unless_deterministic,
    result_serializer="json",
)
def read_champion_pointer(config: RetrainConfig) -> dict | None:
    found = read_champion(open_store(config.store_url))
    if found is None:
        get_run_logger().info("no champion in %s yet", config.store_url)
        return None
    champion, etag = found
    get_run_logger().info(
        "champion is run %s (dataset %s, config %s)",
        champion["run_id"],
        champion.get("dataset_fingerprint", "?")[:12],
        champion.get("config_fingerprint"),
    )
    return {**champion, "etag": etag}


def data_context(packed_dir: str) -> dict:
    """How the packed splits were made, for the gate's reasons and the report: the manifest's
    `split_policy` and the leakage report's `contamination` (None in packs made before them)."""
    packed = load_packed(Path(packed_dir))
    leakage_path = Path(packed_dir) / "leakage_report.json"
    leakage = json.loads(leakage_path.read_text()) if leakage_path.is_file() else {}
    return {"split_policy": packed.manifest.get("split_policy"), "contamination": leakage.get("contamination")}


def _candidate_plots(run_id: str, splits: dict, scores: dict, point, history: list[dict]) -> dict:
    from boneflow.evaluate.plots import plot_confusion_matrix, plot_learning_curves, plot_roc

    plots_dir, judged = run_work_dir(run_id, "plots"), scores["test_clean"]
    return {
        "confusion_matrix.png": plot_confusion_matrix(
            splits["test_clean"]["confusion"], list(CLASSES), plots_dir / "confusion_matrix.png"
        ),
        "roc.png": plot_roc(
            judged.labels, point.probability(judged.margins), plots_dir / "roc.png", operating_threshold=point.threshold
        ),
        "learning_curves.png": plot_learning_curves(history, plots_dir / "learning_curves.png"),
    }


@task(cache_policy=STAGE_CACHE, persist_result=True, timeout_seconds=3600, result_serializer="json")
def evaluate_candidate(run_id: str, config: RetrainConfig, packed_dir: str, trained: dict) -> dict:
    """{split: metrics} for every evaluation split the pack holds, at the operating point chosen
    on validation (temperature + threshold for the fractured-recall target), the per-image
    predictions the gate pairs with the champion's, and the plots (local paths)."""
    from boneflow.evaluate.calibration import fit_operating_point
    from boneflow.evaluate.predict import per_image, score_splits, split_report
    from boneflow.train.model import load_model

    log, t0, store = get_run_logger(), time.perf_counter(), open_store(config.store_url)
    model_dir = run_work_dir(run_id, "model")
    for name in ("model.safetensors", "model.json"):  # the training may have run on another machine
        store.get_file(f"runs/{run_id}/{name}", model_dir / name)
    model, _ = load_model(model_dir / "model.safetensors", model_dir / "model.json")
    scores = score_splits(model, load_packed(Path(packed_dir)), image_size=config.image_size)
    point = fit_operating_point(scores["val"].labels, scores["val"].margins, min_recall=config.min_recall)
    splits = {name: split_report(s, point) for name, s in scores.items()}
    plots = _candidate_plots(run_id, splits, scores, point, trained["history"])
    fit = point.details
    log.info(
        "operating point on validation: threshold %.3f for fractured recall >= %.2f (got %s), "
        "temperature %.2f (NLL %.3f -> %.3f, ECE %.3f -> %.3f)",
        point.threshold,
        config.min_recall,
        fit.get("val_recall"),
        point.temperature,
        fit["nll_before"],
        fit["nll_after"],
        fit["ece_before"],
        fit["ece_after"],
    )
    log.info(
        "candidate %s: %s (%.1fs)",
        run_id,
        ", ".join(f"{s} acc {m['accuracy']:.3f} (n={m['n']})" for s, m in splits.items() if m["n"]),
        time.perf_counter() - t0,
    )
    return {
        "splits": splits,
        "plots": {k: str(v) for k, v in plots.items()},
        "operating_point": point.to_meta(),
        "context": data_context(packed_dir),
        "predictions": {name: per_image(s, point) for name, s in scores.items()},
    }


@task(
    cache_policy=STAGE_CACHE,
    persist_result=True,
    timeout_seconds=3600,
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_unless_deterministic,
    result_serializer="json",
)
def evaluate_champion(
    run_id: str, config: RetrainConfig, packed_dir: str, champion: dict | None, dataset_root: str
) -> dict | None:
    """The champion re-scored on this run's splits (a fair comparison), or None without one.
    Each model is scored the way it is served: a champion trained at other sizes gets the same
    evaluation images decoded again at its pack size and cropped to its image size, and its own
    operating point (model.json threshold and temperature; 0.5 and 1 for older champions)."""
    if champion is None:
        return None
    from boneflow.evaluate.calibration import OperatingPoint
    from boneflow.evaluate.predict import per_image, split_report
    from boneflow.evaluate.rescore import score_with_own_preprocessing
    from boneflow.serve.model_meta import read_model_meta
    from boneflow.train.model import load_model

    log, t0 = get_run_logger(), time.perf_counter()
    store, model_dir = open_store(config.store_url), run_work_dir(run_id, "champion")
    for name in ("model.safetensors", "model.json"):  # sha256-checked against its manifest
        fetch_run_file(store, champion["run_id"], name, model_dir / name)
    # store data is untrusted: bound model.json's sizes before they size a network
    read_model_meta(model_dir / "model.json", source=f"runs/{champion['run_id']}/model.json")
    model, meta = load_model(model_dir / "model.safetensors", model_dir / "model.json")
    point = OperatingPoint.from_meta(meta, where=f"runs/{champion['run_id']}/model.json")
    data = load_packed(Path(packed_dir))
    if meta["preprocessing"]["pack_size"] != data.size:
        log.info(
            "champion %s was packed at %d px, this run at %d: decoding the evaluation images again at its size",
            champion["run_id"],
            meta["preprocessing"]["pack_size"],
            data.size,
        )
    scores = score_with_own_preprocessing(model, meta, data, Path(dataset_root))
    splits = {name: split_report(s, point) for name, s in scores.items()}
    log.info(
        "champion %s re-scored at its threshold %.3f: test_clean acc %.3f (%.1fs)",
        champion["run_id"],
        point.threshold,
        splits["test_clean"]["accuracy"],
        time.perf_counter() - t0,
    )
    return {
        "run_id": champion["run_id"],
        "splits": splits,
        "predictions": {name: per_image(s, point) for name, s in scores.items()},
    }


@task(cache_policy=NO_CACHE, result_serializer="json")
def gate(config: RetrainConfig, candidate: dict, champion: dict | None) -> dict:
    policy = config.gate_policy()
    paired = None
    if champion:
        paired = paired_from_predictions(
            candidate.get("predictions", {}).get(policy.split), champion.get("predictions", {}).get(policy.split)
        )
    context = candidate.get("context") or {}
    decision = decide(
        candidate["splits"],
        champion["splits"] if champion else None,
        policy,
        champion_run_id=champion["run_id"] if champion else None,
        paired=paired,
        split_policy=context.get("split_policy"),
        contamination=context.get("contamination"),
    )
    get_run_logger().info("%s", decision.message)
    return {**decision.to_dict(), "message": decision.message}
