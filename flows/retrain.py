"""The retrain flow: acquire -> validate -> audit -> pack -> train -> evaluate -> gate -> publish.

Runs weekly on the cpu pool (deployment `retrain/retrain`, dispatch=deployment: training goes
to the gpu pool) or in-process from `boneflow run` (dispatch=local). How it ends (Completed,
"Skipped" or Failed with the gate's reasons): README, "What a run does".
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed

from boneflow.config import RetrainConfig
from boneflow.gate.decision import GATE_REJECTED
from flows.train import train
from tasks.artifacts import write_failure_artifact
from tasks.data import acquire_dataset, audit, dataset_artifacts, fetch_packed_dataset, pack_and_store, validate
from tasks.evaluate import augmentation_preview, evaluate_candidate, evaluate_champion, gate, read_champion_pointer
from tasks.publish import promote_champion, publish_run_files, report_artifacts
from tasks.results import RESULTS
from tasks.runtime import run_id_for_current_flow_run
from tasks.training import train_on_gpu_pool, training_plan
from tasks.work_folder import empty_work_folder


@flow(name="retrain", on_failure=[write_failure_artifact], persist_result=True, result_serializer=RESULTS)
def retrain(config: RetrainConfig = RetrainConfig()):  # noqa: B008 Prefect reads the default into the parameter schema; never mutated
    """Retrain, evaluate, gate and publish the bone-fracture classifier."""
    log, run_id = get_run_logger(), run_id_for_current_flow_run()
    acquired = acquire_dataset(config)

    packed_dir = fetch_packed_dataset(config, run_id, acquired.fingerprint)  # reuse datasets/<fp>/<size>/
    if packed_dir is None:
        validated = validate(acquired.root, config, run_id)
        leakage = audit(validated, config)
        packed_dir = pack_and_store(validated, leakage, config, run_id, acquired.fingerprint)
    dataset_artifacts(packed_dir, run_id)
    augmentation_preview(run_id, config, packed_dir)

    champion = read_champion_pointer(config)
    skip = (
        champion
        and not config.force
        and champion.skip_reason(dataset_fingerprint=acquired.fingerprint, config_fingerprint=config.fingerprint())
    )
    if skip:
        log.info("%s", skip)
        empty_work_folder(run_id)
        return Completed(name="Skipped", message=skip)

    jobs = training_plan(run_id, packed_dir)  # this run, or one member per cross-fitting fold
    if config.dispatch == "local":
        trained = [train(job["run_id"], config, acquired.fingerprint, job["fold"]) for job in jobs]
    else:
        trained = train_on_gpu_pool(run_id, config, acquired.fingerprint, jobs)

    candidate = evaluate_candidate(run_id, config, packed_dir, trained)
    champion_scores = evaluate_champion(run_id, config, packed_dir, champion, acquired.root)
    decision = gate(config, candidate, champion_scores)

    published = publish_run_files(run_id, config, acquired, packed_dir, trained, candidate, decision)
    report_artifacts(config, published)
    empty_work_folder(run_id, [job["run_id"] for job in jobs])  # published: a Retry finds all it needs in the store
    if not decision.passed:
        return Failed(name=GATE_REJECTED, message=decision.message)
    promote_champion(config, published, champion)
    return {
        "run_id": run_id,
        "promoted": True,
        "store_url": config.store_url,
        "gate": decision.message,
        "judged_split": decision.split_name,
        "judged": candidate.splits[decision.split],
    }
