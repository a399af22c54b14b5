"""Get the dataset: a local folder, or Kaggle through kagglehub (transient failures retried), and name its version.

`DatasetVersion.fingerprint` is sha256 over the sorted (relative path, file sha256) pairs of
every file under the dataset root, so two copies with the same bytes get the same fingerprint
wherever they live, and any changed, added or removed file changes it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from boneflow.errors import BoneflowError
from boneflow.hashing import sha256_file
from boneflow.intake.kaggle_errors import DownloadFailure, classify_download_error
from boneflow.intake.layout import LayoutError, check_layout, dataset_files, find_dataset_root

log = logging.getLogger(__name__)


class AcquireError(BoneflowError):
    """The dataset could not be obtained (Kaggle unreachable, bad handle, ...)."""


@dataclass(frozen=True)
class DatasetVersion:
    source: str  # "kaggle" | "local"
    handle: str | None  # Kaggle handle as requested (None for a local folder)
    version: str | None  # resolved Kaggle version number, None when unknown (local copy)
    file_count: int
    fingerprint: str  # sha256 hex over sorted (relpath, file sha256)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AcquiredDataset:
    root: Path  # the folder holding train/val/test
    version: DatasetVersion


def fingerprint_from_hashes(file_hashes: dict[str, str]) -> str:
    """The dataset fingerprint from {relpath: sha256}; shared with validation, which hashes as it reads."""
    digest = hashlib.sha256()
    for rel in sorted(file_hashes):
        digest.update(rel.encode("utf-8") + b"\0" + file_hashes[rel].encode("ascii") + b"\n")
    return digest.hexdigest()


def dataset_fingerprint(root: Path) -> tuple[str, int]:
    """(fingerprint, file count) of every regular file under `root` that validation may read
    (the layout's walk: no symlinks out of the root, no undecodable names). hashlib releases
    the GIL, so a few threads overlap disk reads and hashing."""
    rels = dataset_files(Path(root))
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = list(pool.map(sha256_file, [Path(root) / rel for rel in rels]))
    return fingerprint_from_hashes(dict(zip(rels, hashes))), len(rels)


# Waits before attempts 2, 3, ...: BACKOFF_S, then doubling. Only transient failures wait
# (boneflow/intake/kaggle_errors.py); the rest fail at once.
BACKOFF_S = 20.0


def _kaggle_download(
    handle: str, *, retries: int, on_retry: Callable[[str], None], sleep: Callable[[float], None]
) -> str:
    import kagglehub  # imported lazily: a local run never needs it

    attempt = 1
    while True:
        try:
            return kagglehub.dataset_download(handle)
        except Exception as exc:
            failure = classify_download_error(exc)
            if not failure.retryable or attempt == retries:
                raise _final_error(handle, failure, exc, attempts=attempt) from exc
        wait = BACKOFF_S * 2 ** (attempt - 1)
        attempt += 1
        on_retry(f"Kaggle: attempt {attempt}/{retries} in {wait:.0f} s: {failure.reason}")
        sleep(wait)


def _final_error(handle: str, failure: DownloadFailure, exc: Exception, *, attempts: int) -> AcquireError:
    if not failure.retryable and not failure.unreachable:  # Kaggle said no: bad handle, credentials, not found
        return AcquireError(
            f"Kaggle dataset {handle!r} could not be downloaded: {exc}. Check the "
            f"handle (owner/dataset[/versions/N]) and your Kaggle credentials, or "
            f"pass --data-dir with a local copy."
        )
    tried = f"failed {attempts} times" if attempts > 1 else "failed"
    why = "" if failure.retryable else f": {failure.reason}, which a retry cannot fix, so none was made"
    return AcquireError(
        f"Kaggle is unreachable: downloading {handle!r} {tried}{why} "
        f"(last error: {type(exc).__name__}: {exc}). Work offline with a local copy: "
        f"`boneflow run --data-dir /path/to/copy` (any folder above train/val/test), "
        f"or `boneflow demo-data PATH` for a synthetic set."
    )


def acquire(
    *,
    data_dir: Path | None,
    kaggle_handle: str,
    retries: int = 3,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> AcquiredDataset:
    """A local folder when `data_dir` is given, else kagglehub's download of `kaggle_handle`
    (unversioned = latest; `.../versions/N` pins, and is served from kagglehub's cache offline).
    A transient failure is retried, `retries` attempts in all, each announced through `on_retry`
    (default: a warning on this module's logger); any other fails at once with AcquireError."""
    if data_dir is not None:
        source, handle, version, top = "local", None, None, Path(data_dir)
    else:
        top = Path(_kaggle_download(kaggle_handle, retries=retries, on_retry=on_retry or log.warning, sleep=sleep))
        source, handle = "kaggle", kaggle_handle
        match = re.search(r"versions[/\\](\d+)$", str(top))  # kagglehub's cache path ends in versions/N
        version = match.group(1) if match else None
    root = find_dataset_root(top)
    check_layout(root)
    fingerprint, count = dataset_fingerprint(root)
    if count == 0:
        raise LayoutError(f"Dataset root {root}: no files at all. Point --data-dir at a filled copy.")
    log.info("acquired %s dataset at %s: %d files, fingerprint %s", source, root, count, fingerprint[:12])
    return AcquiredDataset(root=root, version=DatasetVersion(source, handle, version, count, fingerprint))
