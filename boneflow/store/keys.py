"""Store keys, built only from validated ids so nothing can escape the layout (README, "The
store"): a run's file name is a file or one subfolder + file (checkpoints/x.pt). Run ids sort by
start time, and two runs started in the same second still differ (6 random hex)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from boneflow.hashing import sha256_bytes
from boneflow.store.errors import InvalidKeyError

CHAMPION_KEY = "champion.json"
MANIFEST_NAME = "manifest.json"
RUNS_PREFIX = "runs/"
DATASETS_PREFIX = "datasets/"
CHECKPOINTS_FOLDER = "checkpoints"  # inside a run: the training checkpoints and their index
CHECKPOINT_INDEX = f"{CHECKPOINTS_FOLDER}/index.json"  # run-relative; size + sha256 of each checkpoint

RUN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
# Fingerprints are lowercase hex digests (full sha256 or a prefix of at least 8 characters).
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{8,64}$")
# A full sha256 digest. Digests read from champion.json, manifests and indexes name cache
# folders, so anything else (`../x`, `/abs`) must be refused before it meets a path.
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# One path part: starts with a letter or digit (so no `.`, `..`, hidden or temp files), then a
# conservative set of characters. Spaces are allowed because the Kaggle class folder is
# "not fractured"; nothing else that a shell or URL would treat specially.
_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")
_MAX_KEY_LEN = 1000


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def member_run_id(run_id: str, fold: int) -> str:
    """The run id under which fold `fold`'s member of a cross-fitted run trains (its checkpoints,
    model and train_result.json): the parent's timestamp and a suffix derived from the parent id
    and the fold, so a Retry of the parent finds the same member folder and resumes it."""
    validate_run_id(run_id)
    return run_id[:16] + "-" + sha256_bytes(f"{run_id}/fold-{fold}".encode())[:6]


def _invalid(what: str, value: object, why: str) -> InvalidKeyError:
    return InvalidKeyError(f"{what} {value!r} is not allowed: {why}.")


def validate_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise _invalid("run id", run_id, "expected YYYYmmddTHHMMSSZ-xxxxxx as made by new_run_id()")
    return run_id


def validate_fingerprint(fingerprint: str) -> str:
    if not isinstance(fingerprint, str) or not FINGERPRINT_RE.match(fingerprint):
        raise _invalid("fingerprint", fingerprint, "expected 8-64 lowercase hex digits")
    return fingerprint


def validate_sha256(digest: object, *, what: str = "sha256") -> str:
    if not isinstance(digest, str) or not SHA256_RE.match(digest):
        shown = digest[:80] if isinstance(digest, str) else digest
        raise _invalid(what, shown, "expected 64 lowercase hex digits (a sha256 digest)")
    return digest


def validate_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 8192:
        raise _invalid("image size", size, "expected an integer between 1 and 8192")
    return size


def validate_name(name: str, *, max_parts: int = 2) -> str:
    """A relative file name inside a run or dataset folder: at most `max_parts` parts."""
    if not isinstance(name, str) or not name:
        raise _invalid("name", name, "it is empty")
    if "\\" in name:
        raise _invalid("name", name, "backslashes are not path separators here; use '/'")
    if name.startswith("/"):
        raise _invalid("name", name, "absolute paths are not allowed")
    parts = name.split("/")
    if len(parts) > max_parts:
        raise _invalid("name", name, f"at most {max_parts - 1} subfolder level(s) allowed")
    for part in parts:
        if part in ("", ".", ".."):
            raise _invalid("name", name, "empty, '.' or '..' path parts are not allowed")
        if not _PART_RE.match(part):
            raise _invalid(
                "name",
                name,
                f"part {part!r} must start with a letter or digit and "
                "use only letters, digits, '.', '_', '-' or spaces",
            )
    return name


def validate_key(key: str) -> str:
    """Any store key (the store implementations' last line of defence)."""
    if not isinstance(key, str) or not key:
        raise _invalid("key", key, "it is empty")
    if len(key) > _MAX_KEY_LEN:
        raise _invalid("key", key[:60] + "...", f"longer than {_MAX_KEY_LEN} characters")
    return validate_name(key, max_parts=32)


def validate_prefix(prefix: str) -> str:
    """A listing prefix: '' or a key prefix, optionally ending in '/'."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


def in_layout(parts: list[str] | tuple[str, ...]) -> bool:
    """Whether the folder `parts` (relative to the store root) is one the layout above has:
    the root, runs/, runs/<run id>/ and one subfolder, datasets/, datasets/<fingerprint>/<size>/
    and up to three subfolders. Folders beside them are not the store's own."""
    if not parts:
        return True
    if not all(_PART_RE.match(p) for p in parts):
        return False
    top, rest = parts[0], list(parts[1:])
    if top == RUNS_PREFIX.rstrip("/"):
        return not rest or (bool(RUN_ID_RE.match(rest[0])) and len(rest) <= 2)
    if top == DATASETS_PREFIX.rstrip("/"):
        if rest and not FINGERPRINT_RE.match(rest[0]):
            return False
        if len(rest) >= 2 and not (rest[1].isdigit() and 1 <= int(rest[1]) <= 8192):
            return False
        return len(rest) <= 5
    return False


def run_prefix(run_id: str) -> str:
    return f"{RUNS_PREFIX}{validate_run_id(run_id)}/"


def run_key(run_id: str, name: str) -> str:
    """runs/<run_id>/<name>; name may hold one subfolder (checkpoints/epoch-0001.pt)."""
    return run_prefix(run_id) + validate_name(name)


def checkpoints_prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}{CHECKPOINTS_FOLDER}/"


def checkpoint_key(run_id: str, name: str) -> str:
    """runs/<run_id>/checkpoints/<name>; `name` is one file name (boneflow.train.checkpoint
    says which names are checkpoints)."""
    return checkpoints_prefix(run_id) + validate_name(name, max_parts=1)


def dataset_prefix(fingerprint: str, size: int) -> str:
    return f"{DATASETS_PREFIX}{validate_fingerprint(fingerprint)}/{validate_size(size)}/"


def dataset_key(fingerprint: str, size: int, name: str) -> str:
    return dataset_prefix(fingerprint, size) + validate_name(name)
