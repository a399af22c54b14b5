"""Local cache of published models: `<cache root>/models/<weights sha256>-<model.json sha256>/`
(root `$BONEFLOW_CACHE`, else `~/.cache/boneflow`); README, "Security model", says how its
digests and deletions are guarded.

model.json is in the key because it holds the preprocessing and classes: a run re-published
with a corrected model.json must not be served from the old folder. A folder appears all at
once (fetched into a temporary sibling, checked, renamed), and every load re-hashes its files
(tens of ms), so a crash, a second process or a damaged cache never serves a bad model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from boneflow.registry.publish import fetch_run_file, read_manifest
from boneflow.serve.errors import ModelNotFoundError
from boneflow.serve.model_meta import read_model_meta
from boneflow.store.base import Store, sha256_file
from boneflow.store.errors import InvalidKeyError, ObjectNotFoundError
from boneflow.store.keys import validate_sha256

WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"


def run_model_sha256(store: Store, run_id: str) -> str:
    """The sha256 the run's manifest records for its weights (the cache key for `--run-id`)."""
    try:
        manifest = read_manifest(store, run_id)
    except ObjectNotFoundError as err:
        raise ModelNotFoundError(f"{err} Check the run id (published runs are under runs/ in the store).") from None
    entry = manifest["files"].get(WEIGHTS)
    if entry is None:  # read_manifest checked every listed entry's sha256
        raise ModelNotFoundError(
            f"runs/{run_id}/manifest.json in {store.url} lists no {WEIGHTS}; the run has no "
            f"model (a failed training?) — pick another run"
        )
    return entry["sha256"]


def remove_inside(root: Path, folder: Path) -> None:
    """rmtree `folder` only if it really lies inside `root` (links and `..` resolved)."""
    real_root, real = root.resolve(), folder.resolve()
    if real == real_root or not real.is_relative_to(real_root) or folder.is_symlink():
        raise ModelNotFoundError(f"refusing to delete {folder}: it is not a folder inside the model cache {real_root}")
    shutil.rmtree(real, ignore_errors=True)


def _cached(folder: Path, weights_sha256: str, json_sha256: str) -> bool:
    def intact(name: str, digest: str) -> bool:
        return (folder / name).is_file() and sha256_file(folder / name) == digest

    if not (intact(WEIGHTS, weights_sha256) and intact(MODEL_JSON, json_sha256)):
        return False
    try:
        members = ensemble_members(folder / MODEL_JSON, source=str(folder / MODEL_JSON))
    except ModelNotFoundError:
        return False
    return all(intact(name, digest) for name, digest in members)


def ensemble_members(model_json: Path, *, source: str) -> list[tuple[str, str]]:
    """(file, sha256) of each fold-ensemble member beyond model.safetensors that model.json
    lists (train/ensemble.py); [] for a single model. Names and digests are checked first."""
    from boneflow.train.ensemble import MAX_MEMBERS, member_file

    listed = read_model_meta(model_json, source=source).get("members") or []
    if not isinstance(listed, list) or len(listed) > MAX_MEMBERS:
        raise ModelNotFoundError(f"{source}: field 'members' must be a list of at most {MAX_MEMBERS} entries")
    out = []
    for index, entry in enumerate(listed):
        name = entry.get("weights") if isinstance(entry, dict) else None
        if name != member_file(index):
            raise ModelNotFoundError(f"{source}: member {index} must name {member_file(index)!r}, not {name!r}")
        try:
            digest = validate_sha256(entry.get("sha256"), what=f"member {index} sha256")
        except InvalidKeyError as err:
            raise ModelNotFoundError(f"{source}: {err}") from None
        if index > 0:
            out.append((name, digest))
    return out


def cached_model(store: Store, run_id: str, sha256: str, *, root: Path | None = None) -> Path:
    """Folder holding the run's verified weights and model.json, fetched once per hash pair.
    `sha256` was checked by its reader (champion_model, read_manifest), `run_id` by read_manifest."""
    # The manifest's model.json digest is part of the key; read_manifest checks every digest.
    manifest = read_manifest(store, run_id)
    json_entry = manifest["files"].get(MODEL_JSON)
    if json_entry is None:
        raise ModelNotFoundError(
            f"runs/{run_id}/manifest.json in {store.url} lists no {MODEL_JSON}; "
            "the run cannot be served — re-publish it"
        )
    models = (root or Path(os.environ.get("BONEFLOW_CACHE") or Path.home() / ".cache" / "boneflow")) / "models"
    folder = models / f"{sha256}-{json_entry['sha256']}"
    if _cached(folder, sha256, json_entry["sha256"]):
        return folder
    if folder.exists() or folder.is_symlink():
        remove_inside(models, folder)  # damaged: fetch again below

    models.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=models))
    try:
        # fetch_run_file checks each file's size and sha256 against the run's manifest.
        fetch_run_file(store, run_id, WEIGHTS, staging / WEIGHTS, manifest=manifest)
        fetch_run_file(store, run_id, MODEL_JSON, staging / MODEL_JSON, manifest=manifest)
        if sha256_file(staging / WEIGHTS) != sha256:
            raise ModelNotFoundError(
                f"runs/{run_id}/{WEIGHTS} in {store.url} does not have sha256 {sha256} that "
                f"champion.json names; the pointer and the run disagree — re-promote the run"
            )
        for name, digest in ensemble_members(staging / MODEL_JSON, source=f"runs/{run_id}/{MODEL_JSON}"):
            fetch_run_file(store, run_id, name, staging / name, manifest=manifest)
            if sha256_file(staging / name) != digest:
                raise ModelNotFoundError(
                    f"runs/{run_id}/{name} in {store.url} does not have the sha256 model.json lists for it; "
                    "re-publish the run"
                )
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / WEIGHTS).is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
