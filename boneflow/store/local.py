"""A folder as the store (the embedded default).

Writes go through `boneflow.atomic`, whose temp names start with '.', which no key part may.
Conditional writes (the champion pointer) hold an exclusive `fcntl.flock` on a sidecar lock
file (released by the kernel if the holder dies; it excludes other threads too, each opening
its own file description) while they compare the local "etag" and replace. A key resolving
outside the root through a symbolic link is refused before each access; an attacker who can
swap links between check and access already has write access to the folder.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from boneflow.atomic import TEMP_NAME_RE, copy_file, write_bytes
from boneflow.store.base import Listing, ObjectInfo, SkippedKey, Store, read_capped, sha256_bytes
from boneflow.store.errors import ConflictError, ObjectNotFoundError, StoreError
from boneflow.store.keys import in_layout, validate_key, validate_prefix

_LOCK_SUFFIX = ".lock"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _read_versioned(
    path: Path, key: str = "", where: str = "", max_bytes: int | None = None
) -> tuple[bytes, str] | None:
    """Bytes and an ETag-like version of `path`: content hash + inode + mtime, so rewriting
    identical bytes (a new file: temp + rename) still changes it (README, "Local store versions")."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = read_capped(fh, st.st_size, key, where, max_bytes)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return data, f"{sha256_bytes(data)[:32]}-{st.st_ino:x}-{st.st_mtime_ns:x}"


class LocalStore(Store):
    def __init__(self, root: str | Path):
        self.url = path = str(root)
        if path.startswith("file://"):
            parsed = urlparse(path)
            if parsed.netloc not in ("", "localhost"):
                raise StoreError(
                    f"Store URL {path!r}: file:// URLs must name a local path "
                    "(file:///abs/path); remote hosts are not supported."
                )
            path = unquote(parsed.path)
        self.root = Path(path).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(
                f"Store folder {self.root} exists but is not a folder; pass a folder path (it is created if missing)."
            )

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        self._check_inside(path, key)
        return path

    def _check_inside(self, path: Path, key: str) -> None:
        resolved = path.resolve()  # follows every link on the way that exists
        if resolved == self.root or resolved.is_relative_to(self.root):
            return
        inside = [*reversed(path.parents), path][len(self.root.parts) :]  # below the root, top down
        link = next((p for p in inside if p.is_symlink()), path)
        raise StoreError(
            f"{key!r} in store {self.root} leads outside the store (to {resolved}) through the "
            f"symbolic link {link}; boneflow never follows links out of a store. Remove the link, "
            f"or point --store at the real folder."
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        write_bytes(self._path(key), bytes(data))

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                return read_capped(fh, os.fstat(fh.fileno()).st_size, key, f"store {self.root}", max_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{key!r} is not in store {self.root}.") from None

    def put_file(self, key: str, path: Path) -> None:
        copy_file(Path(path), self._path(key))

    def get_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFoundError(f"{key!r} is not in store {self.root}.")
        copy_file(src, Path(path))

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def scan(self, prefix: str = "") -> Listing:
        validate_prefix(prefix)
        listing = Listing([], [])
        # Walk only the deepest folder the prefix names, not the whole store.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        for dirpath, dirnames, filenames in os.walk(start):  # nothing if missing; links to folders are not walked
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in [*dirnames, *filenames]:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                path = Path(dirpath) / name
                if name.startswith(".") or name.endswith(_LOCK_SUFFIX) or not key.startswith(prefix):
                    continue
                if name in dirnames:
                    if path.is_symlink():
                        listing.skipped.append(SkippedKey(key + "/", "a symbolic link to a folder; never followed"))
                    continue
                self._scan_file(key, path, listing)
        listing.objects.sort(key=lambda o: o.key)
        listing.skipped.sort(key=lambda k: k.key)
        return listing

    def _scan_file(self, key: str, path: Path, listing: Listing) -> None:
        try:
            validate_key(key)
            self._check_inside(path, key)
            st = path.stat()
        except FileNotFoundError:  # deleted since listed, or a dangling link
            if path.is_symlink():
                listing.skipped.append(SkippedKey(key, "a symbolic link to nothing"))
            return
        except StoreError as err:  # InvalidKeyError, or a link leaving the store
            listing.skipped.append(SkippedKey(key, str(err)))
            return
        listing.objects.append(ObjectInfo(key, st.st_size, _utc(st.st_mtime)))

    def temp_objects(self) -> builtins.list[ObjectInfo]:
        """`.tmp-*` files of boneflow.atomic, only in the store's own folders (keys.in_layout): a
        foreign folder's files, or files merely named like ours, are not ours to delete."""
        out: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(self.root):  # nothing if the root is missing
            rel = Path(dirpath).relative_to(self.root).parts
            dirnames[:] = [d for d in dirnames if in_layout([*rel, d])]
            for name in filenames:
                path = Path(dirpath) / name
                if TEMP_NAME_RE.match(name) and not path.is_symlink():
                    with contextlib.suppress(FileNotFoundError):
                        st = path.stat()
                        out.append(ObjectInfo(path.relative_to(self.root).as_posix(), st.st_size, _utc(st.st_mtime)))
        return sorted(out, key=lambda o: o.key)

    def delete_temp(self, temp_id: str) -> None:
        folder, _, name = temp_id.rpartition("/")
        parts = folder.split("/") if folder else []
        if not TEMP_NAME_RE.match(name) or "\\" in temp_id or not in_layout(parts):
            raise StoreError(f"{temp_id!r} is not a temp file of store {self.root}; not deleting it.")
        parent = self._path(folder) if folder else self.root
        with contextlib.suppress(FileNotFoundError):
            (parent / name).unlink()

    def empty_folders(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Folders under `prefix` holding no file (only empty folders, if any), deepest first:
        e.g. run folders a killed gc emptied. Keys end in '/'."""
        start = self._path(prefix.rstrip("/"))
        out: list[ObjectInfo] = []
        if not start.is_dir() or start.is_symlink():
            return out
        empty: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(start, topdown=False):
            path = Path(dirpath)
            if filenames or not all(path / d in empty for d in dirnames):
                continue
            empty.add(path)
            if path != start:
                with contextlib.suppress(FileNotFoundError):
                    out.append(ObjectInfo(path.relative_to(self.root).as_posix() + "/", 0, _utc(path.stat().st_mtime)))
        return out

    def remove_empty_folder(self, key: str) -> None:
        with contextlib.suppress(OSError):  # not empty (a new object arrived) or gone: keep it
            os.rmdir(self._path(key.rstrip("/")))

    def read_with_etag(self, key: str, *, max_bytes: int | None = None) -> tuple[bytes, str] | None:
        return _read_versioned(self._path(key), key, f"store {self.root}", max_bytes)

    def put_if(self, key: str, data: bytes, *, etag: str | None) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name("." + path.name + _LOCK_SUFFIX)
        with open(lock_path, "a+b") as lock:  # closing it releases the lock
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            found = _read_versioned(path)
            if etag is None and found is not None:
                raise ConflictError(
                    f"{key!r} already exists in store {self.root} (expected it absent); another writer got there first."
                )
            if etag is not None and (found is None or found[1] != etag):
                what = "it is missing" if found is None else "it has changed"
                raise ConflictError(
                    f"{key!r} in store {self.root} is not the version read "
                    f"earlier ({what}); another writer got there first."
                )
            write_bytes(path, bytes(data))
            written = _read_versioned(path)
            assert written is not None  # written just now, under the lock
            return written[1]

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
