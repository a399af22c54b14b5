"""Publish stages: write the run's files, upload them with the manifest, promote the champion
(last, and only when the gate passed), and the report artifacts."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from boneflow.config import RetrainConfig
from boneflow.data.layout import CLASSES
from boneflow.evaluate.calibration import OperatingPoint, write_operating_point
from boneflow.publish import champion_record, promote, publish_run
from boneflow.report import code_version, render_model_card, render_report
from boneflow.report_summary import render_quality
from boneflow.store import open_store
from tasks.artifacts import image_artifacts, link_artifacts, quality_artifact, report_artifact, table_artifact
from tasks.retry import retry_unless_deterministic
from tasks.runtime import STAGE_CACHE, run_work_dir
from tasks.training import MODEL_FILES


@task(cache_policy=NO_CACHE, result_serializer="json")
def write_run_files(
    run_id: str,
    config: RetrainConfig,
    dataset: dict,
    packed_dir: str,
    trained: dict,
    candidate: dict,
    decision: dict,
    preview: str,
) -> dict:
    """metrics.json, report.md, model_card.md next to the model, reports and plots; returns
    {name in the run folder: local path}."""
    out, packed = run_work_dir(run_id, "publish"), Path(packed_dir)
    cleaning = json.loads((packed / "cleaning_report.json").read_text())
    leakage = json.loads((packed / "leakage_report.json").read_text())
    gate_block = {k: v for k, v in decision.items() if k != "message"}
    context = candidate.get("context") or {}
    metrics = {
        "run_id": run_id,
        "dataset": dataset,
        "splits": candidate["splits"],
        "gate": gate_block,
        "operating_point": candidate.get("operating_point"),
        **context,
    }
    plots = {**candidate["plots"], "augmentation_preview.png": preview}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "report.md").write_text(
        render_report(
            run_id=run_id,
            metrics=metrics,
            gate=gate_block,
            dataset=dataset,
            cleaning_summary=cleaning.get("counts", {}),
            leakage_summary=leakage.get("counts", {}),
            plots={Path(n).stem.replace("_", " "): n for n in plots},
            history=trained["history"],
        )
    )
    model_dir = run_work_dir(run_id, "model")
    if candidate.get("operating_point"):  # serving reads threshold and temperature from model.json
        write_operating_point(model_dir / "model.json", OperatingPoint.from_meta(candidate["operating_point"]))
    (out / "model_card.md").write_text(
        render_model_card(
            run_id=run_id,
            metrics=metrics,
            dataset=dataset,
            config=config.model_dump(),
            model_meta=json.loads((model_dir / "model.json").read_text()),
            leakage_summary=leakage.get("counts", {}),
            cleaning_summary=cleaning.get("counts", {}),
            gate=gate_block,
            code=code_version(),
        )
    )
    files = {name: str(out / name) for name in ("metrics.json", "report.md", "model_card.md")}
    files |= {
        name: str(packed / name)
        for name in ("cleaning_report.json", "leakage_report.json", "splits.json")
        if (packed / name).is_file()
    }
    files |= {name: str(model_dir / name) for name in MODEL_FILES if (model_dir / name).is_file()}
    files |= plots
    return files


@task(
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    timeout_seconds=1800,
    cache_policy=STAGE_CACHE,
    persist_result=True,
    retry_condition_fn=retry_unless_deterministic,
    result_serializer="json",
)
def publish_run_files(run_id: str, config: RetrainConfig, files: dict) -> dict:
    manifest = publish_run(
        open_store(config.store_url), run_id, {k: Path(v) for k, v in files.items()}, code_version=code_version()
    )
    get_run_logger().info("published %d objects under runs/%s/ in %s", len(manifest["files"]), run_id, config.store_url)
    return manifest


@task(
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    timeout_seconds=600,
    cache_policy=STAGE_CACHE,
    persist_result=True,
    retry_condition_fn=retry_unless_deterministic,
    result_serializer="json",
)
def promote_champion(
    run_id: str, config: RetrainConfig, manifest: dict, dataset_fingerprint: str, champion: dict | None
) -> dict:
    """Replace champion.json only if it is still the one this run was compared with."""
    metrics = json.loads(Path(run_work_dir(run_id, "publish") / "metrics.json").read_text())
    record = champion_record(
        run_id=run_id,
        manifest=manifest,
        metrics=metrics,
        dataset_fingerprint=dataset_fingerprint,
        config_fingerprint=config.fingerprint(),
    )
    promote(open_store(config.store_url), record, expected_etag=champion["etag"] if champion else None)
    get_run_logger().info(
        "promoted run %s to champion (replacing %s)", run_id, champion["run_id"] if champion else "nothing"
    )
    return record


def _per_class_rows(splits: dict) -> list[dict]:
    rows = []
    for split, m in splits.items():
        (tn, fp), (fn, tp) = m["confusion"]
        for cls, hit, missed, wrongly in ((CLASSES[1], tp, fn, fp), (CLASSES[0], tn, fp, fn)):
            rows.append(
                {
                    "split": split,
                    "class": cls,
                    "n": hit + missed,
                    "recall": round(hit / (hit + missed), 4) if hit + missed else None,
                    "precision": round(hit / (hit + wrongly), 4) if hit + wrongly else None,
                }
            )
    return rows


@task(cache_policy=NO_CACHE, result_serializer="json")
def report_artifacts(run_id: str, config: RetrainConfig, files: dict, candidate: dict) -> None:
    """The report (plots inlined), per-class table, plot images and links to the store."""
    plots = {n: Path(p) for n, p in files.items() if n.endswith(".png")}
    report_artifact(run_id, Path(files["report.md"]).read_text(), plots)
    quality_artifact(run_id, render_quality(json.loads(Path(files["metrics.json"]).read_text())))
    table_artifact(
        f"per-class-metrics-{run_id}",
        _per_class_rows(candidate["splits"]),
        "Recall and precision per class and split (positive class: fractured)",
    )
    # the augmentation preview got its image artifact when it was drawn (before the skip check)
    image_artifacts(run_id, {n: p for n, p in plots.items() if n != "augmentation_preview.png"})
    link_artifacts(
        config.store_url, run_id, ["report.md", "metrics.json", "model.safetensors", "model_card.md", "manifest.json"]
    )
