"""Evaluation stages: the augmentation preview, the champion pointer, the candidate and the
champion scored on the same packed splits (each at its own operating point), and the gate.
The models come from the store into a scratch folder each time, never from another stage's
leftovers on this machine."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from boneflow.config import RetrainConfig
from boneflow.contracts import ChampionRef, Scores, TrainSummary
from boneflow.gate.decision import GateDecision, judge
from boneflow.registry.publish import fetch_run_file, read_champion
from boneflow.splits.pack import load_packed
from boneflow.store import open_store
from boneflow.store.keys import run_key
from tasks.artifacts import artifact_key, png_data_uri
from tasks.retry import SHORT_RETRIES
from tasks.runtime import STAGE_CACHE, scratch_dir, stage

_MODEL = ("model.safetensors", "model.json")


@stage(cache_policy=STAGE_CACHE, persist_result=True)
def augmentation_preview(run_id: str, config: RetrainConfig, packed_dir: str) -> None:
    """An image artifact of what the network sees (packed train images above, augmented below);
    drawn before the skip check, so a skipped run shows it too. Publishing draws it again."""
    from prefect.artifacts import create_image_artifact

    from boneflow.report.run_files import augmentation_preview as draw

    with scratch_dir() as tmp:
        path = draw(load_packed(Path(packed_dir)), config, tmp / "augmentation_preview.png")
        create_image_artifact(
            png_data_uri(path),
            key=artifact_key("augmentation-preview", run_id),
            description="Top: packed train images. Bottom: after the training augmentation.",
        )


@stage(**SHORT_RETRIES, cache_policy=NO_CACHE)
def read_champion_pointer(config: RetrainConfig) -> ChampionRef | None:
    found = read_champion(open_store(config.store_url))
    if found is None:
        get_run_logger().info("no champion in %s yet", config.store_url)
        return None
    record, etag = found
    champion = ChampionRef(
        run_id=record["run_id"],
        etag=etag,
        dataset_fingerprint=record.get("dataset_fingerprint"),
        config_fingerprint=record.get("config_fingerprint"),
        record=record,
    )
    get_run_logger().info(
        "champion is run %s (dataset %s, config %s)",
        champion.run_id,
        (champion.dataset_fingerprint or "?")[:12],
        champion.config_fingerprint,
    )
    return champion


@stage(cache_policy=STAGE_CACHE, persist_result=True, timeout_seconds=3600)
def evaluate_candidate(run_id: str, config: RetrainConfig, packed_dir: str, trained: list[TrainSummary]) -> Scores:
    """The candidate on every evaluation split the pack holds, at the operating point chosen on
    validation (temperature + threshold for the fractured-recall target); a cross-fitted
    candidate (one member per fold) on every radiograph out of fold, each fold at the point
    fitted on the others (boneflow/evaluate/crossfit.py)."""
    from boneflow.evaluate.crossfit import score_crossfit
    from boneflow.evaluate.scores import score_candidate
    from boneflow.train.model import load_model

    log, t0, store = get_run_logger(), time.perf_counter(), open_store(config.store_url)
    models = {}
    with scratch_dir() as model_dir:
        for member in trained:  # the training may have run on another machine
            folder = model_dir / member.run_id  # get_file creates it
            for name in _MODEL:
                store.get_file(run_key(member.run_id, name), folder / name)
            models[member.fold] = load_model(folder / "model.safetensors", folder / "model.json")[0]
    packed = load_packed(Path(packed_dir))
    score, model = (score_crossfit, models) if len(trained) > 1 else (score_candidate, models[trained[0].fold])
    scores, point = score(
        model, packed, run_id=run_id, image_size=config.image_size, target_recall=config.target_recall
    )
    fit = point.details
    log.info(
        "operating point on %s (%d radiographs): threshold %.3f for fractured recall >= %.2f (got %s), "
        "temperature %.2f (NLL %.3f -> %.3f, ECE %.3f -> %.3f)",
        fit["fitted_on"],
        fit["n"],
        point.threshold,
        config.target_recall,
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
        ", ".join(
            f"{s} acc {m['accuracy']:.3f} ({m['n']} radiographs, {m['files']} files)"
            for s, m in scores.splits.items()
            if m["n"]
        ),
        time.perf_counter() - t0,
    )
    return scores


@stage(**SHORT_RETRIES, cache_policy=STAGE_CACHE, persist_result=True, timeout_seconds=3600)
def evaluate_champion(
    run_id: str, config: RetrainConfig, packed_dir: str, champion: ChampionRef | None, dataset_root: str
) -> Scores | None:
    """The champion re-scored on this run's splits (a fair comparison), or None without one:
    at its own pack size, crop and operating point (evaluate/scores.py). A cross-fitted run is
    compared with the champion's own out-of-fold predictions instead (its predictions.csv)."""
    if champion is None:
        return None
    from boneflow.evaluate.scores import score_champion
    from boneflow.serve.model_meta import read_model_meta
    from boneflow.splits.folds import planned_folds
    from boneflow.train.model import load_model

    log, t0, store = get_run_logger(), time.perf_counter(), open_store(config.store_url)
    packed = load_packed(Path(packed_dir))
    if planned_folds(packed) > 1:
        return _champion_oof(store, champion.run_id)
    with scratch_dir() as model_dir:
        for name in _MODEL:  # sha256-checked against its manifest
            fetch_run_file(store, champion.run_id, name, model_dir / name)
        # store data is untrusted: bound model.json's sizes before they size a network
        meta = read_model_meta(model_dir / "model.json", source=run_key(champion.run_id, "model.json"))
        for member in (m.get("weights") for m in meta.get("members") or [] if isinstance(m, dict)):
            if member and member != "model.safetensors":  # a fold ensemble: its other members
                fetch_run_file(store, champion.run_id, str(member), model_dir / str(member))
        model, meta = load_model(model_dir / "model.safetensors", model_dir / "model.json")
    if meta["preprocessing"]["pack_size"] != packed.size:
        log.info(
            "champion %s was packed at %d px, this run at %d: decoding the evaluation images again at its size",
            champion.run_id,
            meta["preprocessing"]["pack_size"],
            packed.size,
        )
    scores = score_champion(model, meta, packed, Path(dataset_root), run_id=champion.run_id)
    log.info(
        "champion %s re-scored by radiograph at its threshold %.3f: test_clean acc %.3f (%.1fs)",
        champion.run_id,
        scores.splits["test_clean"]["threshold"],
        scores.splits["test_clean"]["accuracy"],
        time.perf_counter() - t0,
    )
    return scores


def _champion_oof(store, champion_run_id: str) -> Scores:
    """The champion's published OOF predictions (sha256-checked), or empty scores without them."""
    from boneflow.evaluate.crossfit import champion_oof_scores
    from boneflow.registry.publish import read_manifest
    from boneflow.report.predictions_csv import read_oof_predictions

    manifest = read_manifest(store, champion_run_id)
    found = None
    if "predictions.csv" in manifest["files"]:
        with scratch_dir() as tmp:
            path = fetch_run_file(store, champion_run_id, "predictions.csv", tmp, manifest=manifest)
            found = read_oof_predictions(path.read_bytes(), where=run_key(champion_run_id, "predictions.csv"))
    get_run_logger().info(
        "champion %s: %s",
        champion_run_id,
        f"{len(set(found.groups))} radiographs predicted out of fold" if found else "no out-of-fold predictions",
    )
    return champion_oof_scores(champion_run_id, found)


@stage(cache_policy=NO_CACHE)
def gate(config: RetrainConfig, candidate: Scores, champion: Scores | None) -> GateDecision:
    decision = judge(candidate, champion, config.gate_policy())
    get_run_logger().info("%s", decision.message)
    return decision
