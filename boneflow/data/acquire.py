"""Get the dataset: a local folder, or Kaggle through kagglehub (with retries), and name its version.

`DatasetVersion.fingerprint` is sha256 over the sorted (relative path, file sha256) pairs of
every file under the dataset root, so two copies with the same bytes get the same fingerprint
wherever they live, and any changed, added or removed file changes it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from boneflow.data.layout import LayoutError, check_layout, dataset_files, find_dataset_root
from boneflow.errors import BoneflowError
from boneflow.hashing import sha256_file

__all__ = ["AcquireError", "AcquiredDataset", "DatasetVersion", "LayoutError", "acquire", "dataset_fingerprint"]

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

    @classmethod
    def from_dict(cls, data: dict) -> DatasetVersion:
        fields: dict[str, Any] = {k: data.get(k) for k in ("source", "handle", "version", "file_count", "fingerprint")}
        return cls(**fields)


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


def dataset_fingerprint(root: Path, *, threads: int = 4) -> tuple[str, int]:
    """(fingerprint, file count) of every regular file under `root` that validation may read
    (the layout's walk: no symlinks out of the root, no undecodable names). hashlib releases
    the GIL, so a few threads overlap disk reads and hashing."""
    rels, _ = dataset_files(Path(root))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        hashes = list(pool.map(sha256_file, [Path(root) / rel for rel in rels]))
    return fingerprint_from_hashes(dict(zip(rels, hashes))), len(rels)


def _kaggle_download(handle: str, *, retries: int, backoff_s: float) -> str:
    import kagglehub  # imported lazily: a local run never needs it

    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            return kagglehub.dataset_download(handle)
        except (OSError, ConnectionError, TimeoutError) as exc:  # requests' errors are OSErrors
            last = exc
            if attempt < retries:
                wait = backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "Kaggle download of %s failed (attempt %d/%d: %s); retrying in %.1fs",
                    handle,
                    attempt,
                    retries,
                    type(exc).__name__,
                    wait,
                )
                time.sleep(wait)
        except Exception as exc:  # bad handle, auth, 404: retrying will not help
            raise AcquireError(
                f"Kaggle dataset {handle!r} could not be downloaded: {exc}. Check the "
                f"handle (owner/dataset[/versions/N]) and your Kaggle credentials, or "
                f"pass --data-dir with a local copy."
            ) from exc
    raise AcquireError(
        f"Kaggle is unreachable: downloading {handle!r} failed {retries} times "
        f"(last error: {type(last).__name__}: {last}). Work offline with a local copy: "
        f"`boneflow run --data-dir /path/to/copy` (any folder above train/val/test), "
        f"or `boneflow demo-data PATH` for a synthetic set."
    ) from last


def acquire(*, data_dir: Path | None, kaggle_handle: str, retries: int = 3, backoff_s: float = 2.0) -> AcquiredDataset:
    """A local folder when `data_dir` is given, else kagglehub's download of `kaggle_handle`
    (unversioned = latest; `.../versions/N` pins, and is served from kagglehub's cache offline)."""
    if data_dir is not None:
        source, handle, version, top = "local", None, None, Path(data_dir)
    else:
        if retries < 1:
            raise AcquireError(f"retries={retries}: need at least 1 attempt.")
        top = Path(_kaggle_download(kaggle_handle, retries=retries, backoff_s=backoff_s))
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
