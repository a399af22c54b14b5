"""The training flow: what the gpu pool runs (deployment `train/train-gpu`), and what
`retrain` calls in-process with dispatch=local; cross-fitting runs one per fold, each under its
member run id (store/keys.py:member_run_id).

Restartable: a rerun of the same run_id (the UI's Retry) resumes from the latest checkpoint in
the store. The result goes back through the store: runs/<run_id>/train_result.json.
"""

from __future__ import annotations

from prefect import flow

from boneflow.config import RetrainConfig
from boneflow.contracts import TrainSummary
from tasks.artifacts import write_failure_artifact
from tasks.results import RESULTS
from tasks.training import fetch_run_checkpoints, fetch_training_data, fit_model


@flow(name="train", on_failure=[write_failure_artifact], persist_result=True, result_serializer=RESULTS)
def train(run_id: str, config: RetrainConfig, dataset_fingerprint: str, fold: int | None = None) -> TrainSummary:
    """Train a candidate for `run_id` on the packed dataset `dataset_fingerprint` from the store;
    with `fold`, the cross-fitting member that never sees that fold (run_id is then the member's)."""
    packed_dir = fetch_training_data(config, run_id, dataset_fingerprint)
    checkpoint_dir = fetch_run_checkpoints(run_id, config)
    return fit_model(run_id, config, dataset_fingerprint, packed_dir, checkpoint_dir, fold)
