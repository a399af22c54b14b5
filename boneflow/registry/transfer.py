"""Moving packed datasets and training checkpoints through the store, verified, each with an
`index.json` (size + sha256 per file) written after the files: a GPU worker on another machine
fetches its inputs, and a restarted training resumes from the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from boneflow.registry.verified import (
    check_file_entries,
    download_verified,
    json_bytes,
    local_matches,
    read_index,
    utc_now,
)
from boneflow.store.base import Store, sha256_file
from boneflow.store.errors import IntegrityError, ObjectNotFoundError, StoreError
from boneflow.store.keys import (
    CHECKPOINT_INDEX,
    checkpoint_key,
    checkpoints_prefix,
    dataset_key,
    dataset_prefix,
    run_key,
    validate_name,
)
from boneflow.train.checkpoint import by_epoch, checkpoint_epoch

if TYPE_CHECKING:
    from boneflow.splits.pack import PackedDataset

log = logging.getLogger(__name__)

DATASET_INDEX = "index.json"  # store-side list of a packed dataset's files, written last


# --- datasets ---------------------------------------------------------------------------------
def _dataset_files(local_dir: Path) -> list[str]:
    rel = [path.relative_to(local_dir) for path in sorted(local_dir.rglob("*")) if path.is_file()]
    return [validate_name(r.as_posix(), max_parts=4) for r in rel if not any(p.startswith(".") for p in r.parts)]


def upload_dataset(store: Store, packed: PackedDataset) -> dict:
    """Upload a packed dataset folder to datasets/<fingerprint>/<size>/, then its index.json
    (size + sha256 per file) last. Skips the upload when the store already holds a complete
    copy. Returns {"prefix", "uploaded": bool, "files": {name: {size, sha256}}}."""
    local_dir, fingerprint, size = Path(packed.dir), packed.fingerprint, packed.size
    prefix = dataset_prefix(fingerprint, size)
    names = _dataset_files(local_dir)
    if DATASET_INDEX in names:
        raise StoreError(
            f"{local_dir / DATASET_INDEX}: the name {DATASET_INDEX!r} is reserved for "
            "the store's index of the dataset; rename that file."
        )
    if not names:
        raise StoreError(f"Dataset folder {local_dir} holds no files; pack the dataset first.")
    files = {n: {"size": (local_dir / n).stat().st_size, "sha256": sha256_file(local_dir / n)} for n in names}
    existing = _read_dataset_index(store, fingerprint, size)
    # Skip only when the stored copy holds exactly these bytes: the same data packed with other
    # settings (min_side, leakage threshold) shares the key and must be replaced, index last.
    if existing == files and all(
        store.size(dataset_key(fingerprint, size, n)) == e["size"] for n, e in existing.items()
    ):
        log.info("dataset %s/%s already complete in %s; not uploading", fingerprint, size, store.url)
        return {"prefix": prefix, "uploaded": False, "files": existing}
    for name in names:
        store.put_file(dataset_key(fingerprint, size, name), local_dir / name)
    index = {"fingerprint": fingerprint, "size": size, "created_at": utc_now(), "files": files}
    store.put_bytes(dataset_key(fingerprint, size, DATASET_INDEX), json_bytes(index))
    log.info("uploaded dataset %s/%s: %d files to %s", fingerprint, size, len(files), store.url)
    return {"prefix": prefix, "uploaded": True, "files": files}


def _read_dataset_index(store: Store, fingerprint: str, size: int) -> dict | None:
    key = dataset_key(fingerprint, size, DATASET_INDEX)
    index = read_index(store, key)
    if index is None:
        return None
    if not isinstance(index.get("files"), dict):
        raise StoreError(f"{key!r} in {store.url} has no 'files' table; delete it and re-upload.")
    return check_file_entries(store, key, index["files"], max_parts=4)


def fetch_dataset(store: Store, fingerprint: str, size: int, dest_dir: Path) -> Path:
    """Download datasets/<fingerprint>/<size>/ into dest_dir, every file verified against the
    index. A local copy whose files all match is used as it is. Otherwise the new copy is
    assembled in a temp folder beside dest_dir (matching local files hard-linked, the rest
    downloaded) and renamed into place: another run on this machine reading dest_dir keeps the
    files it opened and never sees a half-rewritten folder, and a failed download leaves
    dest_dir as it was. Returns dest_dir."""
    files = _read_dataset_index(store, fingerprint, size)
    if files is None:
        raise ObjectNotFoundError(
            f"Dataset {fingerprint}/{size} is not in {store.url} (no "
            f"{dataset_key(fingerprint, size, DATASET_INDEX)!r}); upload it "
            "with upload_dataset first."
        )
    dest_dir = Path(dest_dir)
    parts = {name: name.split("/") for name in files}  # names checked by _read_dataset_index
    present = {
        name
        for name, entry in files.items()
        if local_matches(dest_dir.joinpath(*parts[name]), size=entry["size"], sha256=entry["sha256"])
    }
    if len(present) == len(files):
        return dest_dir
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.tmp-", dir=dest_dir.parent))
    try:
        for name, entry in sorted(files.items()):
            target = staging.joinpath(*parts[name])
            if name in present:
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(dest_dir.joinpath(*parts[name]), target)
            else:
                download_verified(
                    store, dataset_key(fingerprint, size, name), target, size=entry["size"], sha256=entry["sha256"]
                )
        _replace_folder(staging, dest_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest_dir


def _link_or_copy(src: Path, dst: Path) -> None:
    # Every writer of these folders renames new files into place, never rewrites one in place,
    # so sharing the inode with the old copy is safe (and free for a multi-GB array).
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _replace_folder(staging: Path, dest: Path) -> None:
    """Move the complete `staging` folder to `dest`, replacing what was there."""
    with contextlib.suppress(OSError):
        os.rename(staging, dest)  # dest absent or empty
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except OSError:
        # Another fetch put its own verified copy there in between: keep that one.
        log.info("%s was replaced by a concurrent fetch; keeping that copy", dest)
    shutil.rmtree(old, ignore_errors=True)


# --- checkpoints ------------------------------------------------------------------------------
def read_checkpoint_index(store: Store, run_id: str) -> dict[str, dict]:
    """{checkpoint name: {size, sha256, ...}} of the checkpoints a run has uploaded so far, from
    runs/<run_id>/checkpoints/index.json; {} before the first upload."""
    key = run_key(run_id, CHECKPOINT_INDEX)
    files = (read_index(store, key) or {}).get("files", {})
    if not isinstance(files, dict):
        raise StoreError(
            f"{key!r} in {store.url} has no 'files' table; delete it (the run's checkpoints are then not resumable)."
        )
    return check_file_entries(store, key, files, max_parts=1)


def upload_checkpoint(store: Store, run_id: str, path: Path, *, keep: int = 2) -> str:
    """Upload one checkpoint file, record its size and sha256 in checkpoints/index.json, then
    delete all but the newest `keep` (~135 MB each, with optimizer state; the run keeps its final
    model separately). The index is rewritten before anything is deleted, so it never lists a
    missing object; one training process writes a run's checkpoints, so it needs no conditional
    write. Returns the key."""
    path = Path(path)
    name = validate_name(path.name, max_parts=1)
    if checkpoint_epoch(name) is None:
        raise StoreError(
            f"{path}: not a checkpoint file name (epoch-NNNN.pt, as save_checkpoint writes); "
            "upload the files save_checkpoint wrote."
        )
    if keep < 1:
        raise StoreError(f"upload_checkpoint(keep={keep}): keep at least the checkpoint just written.")
    key = checkpoint_key(run_id, name)
    entry = {"size": path.stat().st_size, "sha256": sha256_file(path), "uploaded_at": utc_now()}
    store.put_file(key, path)
    index = read_checkpoint_index(store, run_id)
    index[name] = entry
    names = by_epoch(index)
    dropped, kept = names[:-keep], names[-keep:]
    store.put_bytes(
        run_key(run_id, CHECKPOINT_INDEX), json_bytes({"run_id": run_id, "files": {n: index[n] for n in kept}})
    )
    for old in dropped:
        store.delete(checkpoint_key(run_id, old))
    return key


def delete_checkpoints(store: Store, run_id: str) -> int:
    """Delete runs/<run_id>/checkpoints/ (the index first, so it never lists a missing object);
    returns the bytes freed. For a run whose training is finished: its model is a separate object."""
    prefix = checkpoints_prefix(run_id)
    objects = sorted(store.scan(prefix).objects, key=lambda o: o.key != run_key(run_id, CHECKPOINT_INDEX))
    for obj in objects:
        store.delete(obj.key)
    if objects:  # a folder store keeps empty folders
        store.remove_empty_folder(prefix)
    return sum(o.size for o in objects)


def fetch_checkpoints(store: Store, run_id: str, dest_dir: Path, *, latest_only: bool = False) -> list[Path]:
    """Download the run's indexed checkpoints into dest_dir, each verified. `latest_only`
    fetches just the newest one that verifies (enough to resume): a damaged newest checkpoint
    falls back to the one before, like the local resume does. Returns local paths, oldest epoch
    first; [] when the run has no checkpoints yet."""
    index = read_checkpoint_index(store, run_id)
    dest_dir = Path(dest_dir)

    def fetch(name: str) -> Path:
        entry = index[name]
        dest = dest_dir / name
        if not local_matches(dest, size=entry["size"], sha256=entry["sha256"]):
            download_verified(store, checkpoint_key(run_id, name), dest, size=entry["size"], sha256=entry["sha256"])
        return dest

    oldest_first = by_epoch(index)
    if not latest_only:
        return [fetch(name) for name in oldest_first]
    for name in reversed(oldest_first):
        try:
            return [fetch(name)]
        except (IntegrityError, ObjectNotFoundError) as err:
            if name == oldest_first[0]:
                raise
            log.warning("checkpoint %s of run %s is unusable (%s); trying the one before", name, run_id, err)
    return []
