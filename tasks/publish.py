"""Publish stages: write the run's files and upload them with the manifest, the report
artifacts (read back from the store), and the promotion of the champion (last, and only when
the gate passed)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from boneflow import code_version
from boneflow.config import RetrainConfig
from boneflow.contracts import Acquired, ChampionRef, RunFiles, Scores, TrainSummary
from boneflow.gate.decision import GateDecision
from boneflow.registry.publish import champion_record, fetch_run_file, promote, publish_run
from boneflow.registry.transfer import delete_checkpoints
from boneflow.report.run_files import GALLERY_ROWS, PLOT_NAMES, per_class_rows, write_run_files
from boneflow.report.summary import render_quality
from boneflow.serve.examples import write_run_examples
from boneflow.serve.predictor import Predictor
from boneflow.splits.pack import load_packed
from boneflow.store import open_store
from boneflow.store.keys import run_key
from boneflow.train.package import MODEL_FILES
from tasks.artifacts import QUALITY_KEY, artifact_key, inline_images, link_artifacts, png_data_uri, table_artifact
from tasks.retry import STORE_RETRIES
from tasks.runtime import STAGE_CACHE, scratch_dir, stage


@stage(**STORE_RETRIES, timeout_seconds=1800, cache_policy=STAGE_CACHE, persist_result=True)
def publish_run_files(
    run_id: str,
    config: RetrainConfig,
    acquired: Acquired,
    packed_dir: str,
    trained: list[TrainSummary],
    candidate: Scores,
    decision: GateDecision,
) -> RunFiles:
    """The model files (of the run, or of every cross-fitting member: the fold ensemble), the
    report files (boneflow/report/run_files.py) and the app's examples, uploaded with the manifest.
    The checkpoints (of every member) are deleted first unless config.keep_checkpoints: they only
    serve to resume an unfinished training, and the manifest then lists none."""
    from boneflow.train.ensemble import member_file

    store = open_store(config.store_url)
    with scratch_dir() as out:
        model_dir = out / "model"  # get_file creates it
        for name in MODEL_FILES:  # member 0's (or the run's own) files
            store.get_file(run_key(trained[0].run_id, name), model_dir / name)
        for index, member in enumerate(trained[1:], start=1):
            store.get_file(run_key(member.run_id, "model.safetensors"), model_dir / member_file(index))
        packed = load_packed(Path(packed_dir))
        files = write_run_files(
            out,
            run_id=run_id,
            config=config,
            acquired=acquired,
            packed=packed,
            model_dir=model_dir,
            trained=trained[0],
            members=[(m.run_id, m.fold) for m in trained] if len(trained) > 1 else None,
            candidate=candidate,
            decision=decision,
            load_predictor=partial(Predictor.from_model_dir, run_id=run_id),
        )
        files |= write_run_examples(packed, out, seed=config.seed)  # the app's examples
        metrics = json.loads(files["metrics.json"].read_text())
        if not config.keep_checkpoints:  # training is finished: the model is in the store
            for trained_in in dict.fromkeys([run_id, *(m.run_id for m in trained)]):  # each member's too
                freed = delete_checkpoints(store, trained_in)
                get_run_logger().info("deleted the checkpoints of run %s (%.1f MB)", trained_in, freed / 1e6)
        manifest = publish_run(store, run_id, files, code_version=code_version())
    get_run_logger().info("published %d objects under runs/%s/ in %s", len(manifest["files"]), run_id, config.store_url)
    return RunFiles(run_id=run_id, manifest=manifest, metrics=metrics)


@stage(cache_policy=NO_CACHE)
def report_artifacts(config: RetrainConfig, published: RunFiles) -> None:
    """The report (plots inlined), the quality trend, per-class table, plot images and links,
    from the published run in the store."""
    run_id, store = published.run_id, open_store(config.store_url)
    with scratch_dir() as tmp:
        names = ["report.md", *(n for n in (*PLOT_NAMES, GALLERY_ROWS) if n in published.manifest["files"])]
        local = {n: fetch_run_file(store, run_id, n, tmp / n, manifest=published.manifest) for n in names}
        plots = {n: p for n, p in local.items() if n.endswith(".png")}
        create_markdown_artifact(
            inline_images(local["report.md"].read_text(), plots),
            key=artifact_key("report", run_id),
            description=f"boneflow report of run {run_id}",
        )
        for name, path in plots.items():
            if name != "augmentation_preview.png":  # it got its image artifact when drawn (before the skip check)
                create_image_artifact(
                    png_data_uri(path), key=artifact_key(Path(name).stem, run_id), description=f"{name} of run {run_id}"
                )
        gallery = json.loads(local[GALLERY_ROWS].read_text()) if GALLERY_ROWS in local else []
    create_markdown_artifact(  # this run's honest metrics, the champion's and the decision
        render_quality(published.metrics),
        key=QUALITY_KEY,
        description=f"honest quality of run {run_id} vs the champion; see the "
        "artifact's history for the week-by-week trend",
    )
    if gallery:
        table_artifact(
            f"errors-{run_id}",
            gallery,
            "The judged split's most confidently wrong radiographs (probability = mean of the group's files)",
        )
    table_artifact(
        f"per-class-metrics-{run_id}",
        per_class_rows(published.metrics["splits"], published.metrics.get("split_policy")),
        "Recall and precision per class and split (positive class: fractured)",
    )
    link_artifacts(
        config.store_url, run_id, ["report.md", "metrics.json", "model.safetensors", "model_card.md", "manifest.json"]
    )


@stage(**STORE_RETRIES, timeout_seconds=600, cache_policy=STAGE_CACHE, persist_result=True)
def promote_champion(config: RetrainConfig, published: RunFiles, champion: ChampionRef | None) -> dict:
    """Replace champion.json only if it is still the one this run was compared with."""
    record = champion_record(
        run_id=published.run_id,
        manifest=published.manifest,
        metrics=published.metrics,
        dataset_fingerprint=published.metrics["dataset"]["fingerprint"],
        config_fingerprint=config.fingerprint(),
    )
    promote(open_store(config.store_url), record, expected_etag=champion.etag if champion else None)
    get_run_logger().info(
        "promoted run %s to champion (replacing %s)", published.run_id, champion.run_id if champion else "nothing"
    )
    return record
