"""Files that are either complete or absent: the one way boneflow writes a file that another
process, or a restarted run, may read (store objects, downloads, checkpoints, the pack manifest).

The bytes go to a temp file in the target's own folder (same file system, so the rename is
atomic), are fsynced, then `os.replace`d over the target; the folder is fsynced last so the
rename itself survives a power cut. A crash leaves the old file (or none) and at most a temp
file named `TEMP_PREFIX...`: hidden, never a valid store key part (keys start with a letter or
digit), so listings skip it, readers never match it, and the store's gc finds it by the prefix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from boneflow.errors import OutOfSpaceError
from boneflow.hashing import CHUNK

TEMP_PREFIX = ".tmp-"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Exactly the names `_new_temp` makes: prefix, 8 hex, '-', the first 40 characters of a name.
TEMP_NAME_RE = re.compile(r"^\.tmp-[0-9a-f]{8}-[A-Za-z0-9][A-Za-z0-9._ -]{0,39}$")


def _out_of_space(target: Path) -> OutOfSpaceError:
    # The OS error names no file (write(2) has only a descriptor): say which one, and where.
    free = shutil.disk_usage(target.parent).free if target.parent.is_dir() else 0
    return OutOfSpaceError(
        f"no space left to write {target} ({free / 2**20:,.0f} MiB free on its file system); free "
        "space there, or point --store / BONEFLOW_WORK_DIR / BONEFLOW_CACHE at a larger disk"
    )


def _new_temp(folder: Path, name: str) -> Path:
    # Created exclusively like mkstemp, but with the umask's permissions: the result must read
    # like any other file the user writes, not 0600.
    while True:
        tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(4)}-{name[:40]}"
        with contextlib.suppress(FileExistsError), open(tmp, "xb"):
            return tmp


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield an empty temp path beside `target` for the caller to fill (a download, torch.save);
    when the block ends without error it becomes `target` in one rename. On error the temp file
    is removed and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(target.parent, target.name)
    try:
        yield tmp
        # By path, not by the writer's handle: a writer may have renamed another file onto the
        # temp path (boto3's download_file does), and fsync flushes the inode whichever fd names it.
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in _NO_SPACE and not isinstance(err, OutOfSpaceError):
            raise _out_of_space(target) from err
        raise
    # Make the rename durable; a file system that cannot open folders keeps it anyway.
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file handle; what is written appears at `target` in one rename."""
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        yield fh


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_output(target) as fh:
        fh.write(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode())


def copy_file(src: Path, target: Path) -> None:
    with open(src, "rb") as fin, atomic_output(target) as fout:
        shutil.copyfileobj(fin, fout, CHUNK)
