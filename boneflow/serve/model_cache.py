"""Local cache of published models, keyed by the weights' sha256.

`<cache root>/models/<sha256>/{model.safetensors, model.json}`. The cache root is
`$BONEFLOW_CACHE`, else `~/.cache/boneflow`. A model folder appears all at once (files are
fetched into a temporary sibling, checked, then renamed), so a crash or a second process never
leaves a half model where a reader would take it. Every load re-hashes the weights (tens of ms)
so a damaged cache is noticed and fetched again instead of served.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from boneflow.serve.errors import ModelNotFoundError
from boneflow.store.base import Store, sha256_file

WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"


def cache_root() -> Path:
    env = os.environ.get("BONEFLOW_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "boneflow"


def run_model_sha256(store: Store, run_id: str) -> str:
    """The sha256 the run's manifest records for its weights (the cache key for `--run-id`)."""
    from boneflow.publish import read_manifest
    from boneflow.store.errors import ObjectNotFoundError

    try:
        manifest = read_manifest(store, run_id)
    except ObjectNotFoundError as err:
        raise ModelNotFoundError(f"{err} Check the run id (published runs are under runs/ in the store).") from None
    entry = manifest["files"].get(WEIGHTS)
    if not entry or "sha256" not in entry:
        raise ModelNotFoundError(
            f"runs/{run_id}/manifest.json in {store.url} lists no {WEIGHTS}; the run has no "
            f"model (a failed training?) — pick another run"
        )
    return entry["sha256"]


def cached_model(store: Store, run_id: str, sha256: str, *, root: Path | None = None) -> Path:
    """Folder holding the run's verified weights and model.json, fetched once per sha256."""
    from boneflow.publish import fetch_run_file, read_manifest

    models = (root or cache_root()) / "models"
    folder = models / sha256
    if (folder / WEIGHTS).is_file() and (folder / MODEL_JSON).is_file():
        if sha256_file(folder / WEIGHTS) == sha256:
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # damaged: fetch again below

    models.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=models))
    try:
        # fetch_run_file checks each file's size and sha256 against the run's manifest.
        manifest = read_manifest(store, run_id)
        fetch_run_file(store, run_id, WEIGHTS, staging / WEIGHTS, manifest=manifest)
        fetch_run_file(store, run_id, MODEL_JSON, staging / MODEL_JSON, manifest=manifest)
        if sha256_file(staging / WEIGHTS) != sha256:
            raise ModelNotFoundError(
                f"runs/{run_id}/{WEIGHTS} in {store.url} does not have sha256 {sha256} that "
                f"champion.json names; the pointer and the run disagree — re-promote the run"
            )
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / WEIGHTS).is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
