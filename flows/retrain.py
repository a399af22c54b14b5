"""The retrain flow: acquire -> validate -> audit -> pack -> train -> evaluate -> gate -> publish.

Runs weekly on the cpu pool (deployment `retrain/retrain`, dispatch=deployment: training goes
to the gpu pool) or in-process from `boneflow run` (dispatch=local). Ends:
Completed (promoted), Completed named "Skipped" (data and config equal the champion's), or
Failed with the gate's reasons (the run is still published under runs/<run_id>/ for inspection).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed

from boneflow.config import RetrainConfig
from boneflow.gate import GATE_REJECTED
from flows.train import train
from tasks.artifacts import write_failure_artifact
from tasks.data import acquire_dataset, audit, dataset_artifacts, fetch_packed_dataset, pack_and_store, validate
from tasks.evaluate import augmentation_preview, evaluate_candidate, evaluate_champion, gate, read_champion_pointer
from tasks.publish import promote_champion, publish_run_files, report_artifacts, write_run_files
from tasks.runtime import run_id_for_current_flow_run
from tasks.training import train_on_gpu_pool


@flow(name="retrain", on_failure=[write_failure_artifact], persist_result=True, result_serializer="json")
def retrain(config: RetrainConfig = RetrainConfig()):  # noqa: B008 Prefect reads the default into the parameter schema; never mutated
    """Retrain, evaluate, gate and publish the bone-fracture classifier."""
    log, run_id = get_run_logger(), run_id_for_current_flow_run()
    acquired = acquire_dataset(config)
    fingerprint = acquired["version"]["fingerprint"]

    packed_dir = fetch_packed_dataset(config, fingerprint)  # reuse datasets/<fp>/<size>/ if stored
    if packed_dir is None:
        validated = validate(acquired["root"], config, run_id)
        leakage = audit(validated, config)
        packed_dir = pack_and_store(validated, leakage, config, fingerprint)
    dataset_artifacts(packed_dir, run_id)
    preview = augmentation_preview(run_id, config, packed_dir)

    champion = read_champion_pointer(config)
    if (
        champion
        and not config.force
        and champion.get("dataset_fingerprint") == fingerprint
        and champion.get("config_fingerprint") == config.fingerprint()
    ):
        log.info("data and config equal champion %s's: training skipped", champion["run_id"])
        return Completed(
            name="Skipped",
            message=f"Data and config equal champion {champion['run_id']}'s; "
            "nothing to train (set force to retrain anyway).",
        )

    if config.dispatch == "local":
        trained = train(run_id, config, fingerprint)
    else:
        trained = train_on_gpu_pool(run_id, config, fingerprint)

    candidate = evaluate_candidate(run_id, config, packed_dir, trained)
    champion_scores = evaluate_champion(run_id, config, packed_dir, champion, acquired["root"])
    decision = gate(config, candidate, champion_scores)

    files = write_run_files(run_id, config, acquired["version"], packed_dir, trained, candidate, decision, preview)
    manifest = publish_run_files(run_id, config, files)
    report_artifacts(run_id, config, files, candidate)
    if not decision["passed"]:
        return Failed(name=GATE_REJECTED, message=decision["message"])
    promote_champion(run_id, config, manifest, fingerprint, champion)
    return {
        "run_id": run_id,
        "promoted": True,
        "store_url": config.store_url,
        "gate": decision["message"],
        "test_clean": candidate["splits"]["test_clean"],
    }
