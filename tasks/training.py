"""Training stages: fetch the inputs from the store, fit with a checkpoint per epoch, hand the
result back through the store (runs/<run_id>/train_result.json), and the dispatch to the gpu
pool. The store is the hand-off because the gpu worker may be another machine."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from boneflow.config import RetrainConfig
from boneflow.contracts import TrainSummary
from boneflow.registry.transfer import fetch_checkpoints, fetch_dataset, upload_checkpoint
from boneflow.splits.folds import member_splits, planned_folds, read_pool
from boneflow.splits.pack import load_packed
from boneflow.store import open_store
from boneflow.store.errors import ObjectNotFoundError
from boneflow.store.keys import member_run_id, run_key
from boneflow.train.package import MODEL_FILES, TRAIN_RESULT, read_train_summary
from tasks.artifacts import artifact_key
from tasks.retry import STORE_RETRIES
from tasks.runtime import STAGE_CACHE, dataset_cache_dir, run_work_dir, scratch_dir, stage

TRAIN_DEPLOYMENT = "train/train-gpu"  # <flow name>/<deployment name> in prefect.yaml


# NO_CACHE: cheap when the local copy already matches, and a Retry on another machine needs the files
@stage(**STORE_RETRIES, cache_policy=NO_CACHE, timeout_seconds=3600)
def fetch_training_data(config: RetrainConfig, run_id: str, dataset_fingerprint: str) -> str:
    log, t0 = get_run_logger(), time.perf_counter()
    dest = dataset_cache_dir(run_id, dataset_fingerprint, config.pack_size)
    fetch_dataset(open_store(config.store_url), dataset_fingerprint, config.pack_size, dest)
    log.info(
        "packed dataset %s/%d ready at %s (%.1fs)",
        dataset_fingerprint[:12],
        config.pack_size,
        dest,
        time.perf_counter() - t0,
    )
    return str(dest)


@stage(**STORE_RETRIES, cache_policy=NO_CACHE, timeout_seconds=3600)
def fetch_run_checkpoints(run_id: str, config: RetrainConfig) -> str:
    """Checkpoints this run already wrote (a restarted training resumes from the latest)."""
    dest = run_work_dir(run_id, "checkpoints")
    found = fetch_checkpoints(open_store(config.store_url), run_id, dest, latest_only=True)
    get_run_logger().info(
        "run %s: %s",
        run_id,
        f"resuming from {found[-1].name}" if found else "no checkpoints yet, training from scratch",
    )
    return str(dest)


def epoch_progress_text(stats: dict) -> str:
    """The progress artifact's line after an epoch, with the speed (README, "Run it locally (no server)")."""
    speed = stats.get("img_per_s")
    rate = f", {speed:.0f} img/s" if isinstance(speed, (int, float)) and speed == speed else ""  # NaN: no timing
    return f"epoch {stats['epoch']}/{stats['epochs']}: val_acc {stats['val_acc']:.3f}{rate}"


def done_progress_text(history: list[dict], epochs_run: int) -> str:
    """The progress artifact's last line: epochs run and the mean training speed of this fit."""
    speeds = [h["img_per_s"] for h in history if isinstance(h.get("img_per_s"), (int, float)) and h["img_per_s"] > 0]
    rate = f", {sum(speeds) / len(speeds):.0f} img/s" if speeds else ""
    return f"done: {epochs_run} epochs{rate}"


def _epoch_reporter(store, run_id: str):
    """on_epoch for fit(): upload the checkpoint, advance the progress artifact, log the epoch."""
    log = get_run_logger()
    progress_id = create_progress_artifact(
        0.0, key=artifact_key("training-progress", run_id), description=f"epochs done of run {run_id}"
    )

    def on_epoch(stats: dict) -> None:
        key = upload_checkpoint(store, run_id, Path(stats["checkpoint"]))
        update_progress_artifact(
            progress_id, 100.0 * stats["epoch"] / stats["epochs"], description=epoch_progress_text(stats)
        )
        log.info(
            "epoch {epoch}/{epochs}: train_loss {train_loss:.4f} train_acc {train_acc:.3f} val_loss {val_loss:.4f} "
            "val_acc {val_acc:.3f} ({seconds:.1f}s, {img_per_s:.0f} img/s); checkpoint -> {key}".format_map(
                {**stats, "key": key}
            )
        )

    return progress_id, on_epoch


@stage(cache_policy=STAGE_CACHE, persist_result=True)
def fit_model(
    run_id: str,
    config: RetrainConfig,
    dataset_fingerprint: str,
    packed_dir: str,
    checkpoint_dir: str,
    fold: int | None = None,
) -> TrainSummary:
    """fit() with a checkpoint upload, a progress artifact and a log line per epoch; then the
    packaged model (train/package.py) goes to runs/<run_id>/. With `fold`: the member that
    trains on the other folds (splits/folds.py)."""
    from boneflow.train.fit import fit
    from boneflow.train.package import package_model

    log, store = get_run_logger(), open_store(config.store_url)
    packed = load_packed(Path(packed_dir))
    if fold is not None:
        pool = read_pool(packed)
        packed = member_splits(pool, fold, size=packed.size, seed=config.seed, classes=tuple(packed.classes))
        log.info(
            "cross-fitting member %d of %d: trains on %d files, stops early on %d, never sees fold %d (%d files)",
            fold,
            pool.folds,
            len(packed.split("train").labels),
            len(packed.split("val").labels),
            fold,
            len(packed.split("oof").labels),
        )
    progress_id, on_epoch = _epoch_reporter(store, run_id)
    result = fit(packed, config.train_settings(), checkpoint_dir=Path(checkpoint_dir), on_epoch=on_epoch)
    update_progress_artifact(progress_id, 100.0, description=done_progress_text(result.history, result.epochs_run))
    with scratch_dir() as out:
        summary = package_model(
            result,
            out,
            run_id=run_id,
            dataset_fingerprint=dataset_fingerprint,
            config=config,
            classes=packed.classes,
            pack_size=packed.size,
            fold=fold,
        )
        for name in MODEL_FILES:  # train_result.json last: its presence means the others are there
            store.put_file(run_key(run_id, name), out / name)
    # The model and the checkpoints are in the store; the local copies (~180 MB each) only served
    # this fit, and on a gpu worker nothing else would remove them.
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info(
        "trained %d epochs (resumed from epoch %d, best %d) in %.1fs; model in runs/%s/",
        summary.epochs_run,
        summary.resumed_from_epoch,
        summary.best_epoch,
        summary.seconds,
        run_id,
    )
    return summary


@stage(cache_policy=NO_CACHE)
def training_plan(run_id: str, packed_dir: str) -> list[dict]:
    """What to train: this run alone, or one member per cross-fitting fold the pack was planned
    with ({"run_id": member run id, "fold": i}; store/keys.py:member_run_id)."""
    folds = planned_folds(load_packed(Path(packed_dir)))
    if folds < 2:
        return [{"run_id": run_id, "fold": None}]
    jobs = [{"run_id": member_run_id(run_id, f), "fold": f} for f in range(folds)]
    get_run_logger().info(
        "cross-fitting: %d members, %s", folds, ", ".join(f"fold {j['fold']} -> runs/{j['run_id']}/" for j in jobs)
    )
    return jobs


def _finished(store, job: dict) -> TrainSummary | None:
    """A member already trained (its train_result.json is in the store): a Retry reuses it."""
    key = run_key(job["run_id"], TRAIN_RESULT)
    try:
        return read_train_summary(store.get_bytes(key), where=key)
    except ObjectNotFoundError:
        return None


@stage(cache_policy=STAGE_CACHE, persist_result=True)
def train_on_gpu_pool(run_id: str, config: RetrainConfig, dataset_fingerprint: str, jobs: list[dict]) -> list:
    """Run the train-gpu deployment once per job, all at once; wait for them all, read each result
    from the store. Members already trained are reused (README, "Cross-fitting", Training)."""
    log, t0, store = get_run_logger(), time.perf_counter(), open_store(config.store_url)
    done = {j["run_id"]: s for j in jobs if (s := _finished(store, j)) is not None}
    todo = [j for j in jobs if j["run_id"] not in done]
    for job in (j for j in jobs if j["run_id"] in done):
        what = f"fold {job['fold']}" if job["fold"] is not None else f"run {job['run_id']}"
        log.info("%s: reusing its finished training in runs/%s/", what, job["run_id"])
    children = [_start_child(j, config, dataset_fingerprint) for j in todo]
    failed = []
    with get_client(sync_client=True) as client:
        ended = _wait_until_all_final(client, children, config.dispatch_start_timeout, labels=[_label(j) for j in todo])
    for job, child in zip(todo, ended, strict=True):
        if not child.state or not child.state.is_completed():
            state = child.state.name if child.state else "unknown"
            log.error("training flow run %s%s ended %s", child.name, _label(job), state)
            failed.append(f"{child.name} ({child.id}){_label(job)} ended {state}")
            continue
        if (summary := _finished(store, job)) is None:
            raise RuntimeError(
                f"training run {job['run_id']} completed but runs/{job['run_id']}/{TRAIN_RESULT} is missing"
            )
        done[job["run_id"]] = summary
        log.info("training flow run %s%s completed: %d epochs", child.name, _label(job), summary.epochs_run)
    if failed:
        raise RuntimeError(
            f"training flow run(s) {'; '.join(failed)}. Open them in the UI for their logs; after fixing, "
            "press Retry on this run: finished trainings are reused, only these train again."
        )
    log.info("%d training(s) done on the gpu pool in %.1fs", len(jobs), time.perf_counter() - t0)
    return [done[j["run_id"]] for j in jobs]


def _label(job: dict) -> str:
    return f" (fold {job['fold']})" if job["fold"] is not None else ""


def _start_child(job: dict, config: RetrainConfig, dataset_fingerprint: str):
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    try:
        child = run_deployment(
            TRAIN_DEPLOYMENT,
            timeout=0,
            parameters={
                "run_id": job["run_id"],
                "config": config.model_dump(mode="json"),
                "dataset_fingerprint": dataset_fingerprint,
                "fold": job["fold"],
            },
        )
    except ObjectNotFound:
        api = PREFECT_API_URL.value() or "Prefect's ephemeral API (no server)"
        raise RuntimeError(
            f"dispatch=deployment, but the deployment {TRAIN_DEPLOYMENT!r} does not exist on {api}. "
            "Deploy it first (`prefect --no-prompt deploy --all`, or deployments/local_stack.py) "
            "with a worker on the gpu pool, or use dispatch=local (`--dispatch local`)."
        ) from None
    get_run_logger().info(
        "training flow run %s%s created on work pool %r for runs/%s/",
        child.name,
        _label(job),
        child.work_pool_name,
        job["run_id"],
    )
    return child


_POLL_S = 1.0  # the parent->child round trip is part of every dispatched run's wall time


def _wait_until_all_final(client, flow_runs: list, start_timeout_s: int, *, labels: list[str]) -> list:
    """Poll the flow runs until every one has ended; return them, read last. Log each one's state
    changes (labels: " (fold i)" per run), so the log says which fold is where.

    The start timeout (README, "No endless waits"): while none of them runs, those waiting to
    start for longer than `start_timeout_s` at a stretch are cancelled, and this raises once the
    others have ended. While one runs, the others wait for the pool's slots: the clock restarts."""
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger
    from prefect.states import Cancelled

    log = get_logger("boneflow.training")  # when called outside a flow or task run (tests/e2e/test_gpu_pools.py)
    with contextlib.suppress(MissingContextError):
        log = get_run_logger()
    runs, shown = list(flow_runs), [""] * len(flow_runs)
    idle_since, timed_out = time.monotonic(), []
    while True:
        runs = [r if _ended(r) else client.read_flow_run(r.id) for r in runs]
        for i, run in enumerate(runs):
            name = run.state.name if run.state else "unknown"
            if name != shown[i]:
                log.info("training flow run %s%s is %s", run.name, labels[i], name)
            shown[i] = name
        if all(_ended(r) for r in runs):
            break
        if any(r.state is not None and r.state.is_running() for r in runs):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > start_timeout_s:
            why = f"not running after {start_timeout_s}s (dispatch_start_timeout of the retrain run)"
            for run, label in zip(runs, labels):
                # Cancelled, not Cancelling: a pod that starts later must exit without training
                # (README, "No endless waits"; tests/e2e/test_gpu_pools.py).
                if _ended(run):
                    continue
                if client.set_flow_run_state(run.id, Cancelled(message=why)).status == SetStateStatus.ACCEPT:
                    timed_out.append((run, label))  # else it started or ended meanwhile
            idle_since = time.monotonic()
            continue
        time.sleep(_POLL_S)
    if timed_out:
        pool = timed_out[0][0].work_pool_name or "gpu"
        what = ", ".join(f"{r.name}{label}" for r, label in timed_out)
        was = "/".join(sorted({r.state.name if r.state else "unknown" for r, _ in timed_out}))
        raise RuntimeError(
            f"training flow run {what} did not start on work pool {pool!r} within "
            f"{start_timeout_s}s (it was {was}); {'it is' if len(timed_out) == 1 else 'they are'} cancelled. "
            f"Check that a worker polls the pool (`prefect worker start --pool {pool}`), that a "
            "GPU node can come up for its pod (Pending/Unschedulable: node group, autoscaler "
            "limits, nvidia.com/gpu capacity) and that its image can be pulled (ErrImagePull); "
            "the flow run's logs hold the worker's messages. Raise dispatch_start_timeout if "
            "GPU nodes need longer."
        )
    return runs


def _ended(flow_run) -> bool:
    return flow_run.state is not None and flow_run.state.is_final()
