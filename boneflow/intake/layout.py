"""Dataset layout: where train/val/test and the class folders are, and what else lies there.

`--data-dir` may be any folder above the splits (Kaggle's copy nests its folder twice), so the
split folders are searched for downwards, breadth-first. Anything that is not
`<split>/<class>/<file>` is reported as stray, never silently ignored or trained on. The walk
follows a symlink only when its target stays inside the dataset root (the root itself may be
one); other links, link loops, non-UTF-8 names and folders it cannot list are in
`Layout.skipped` with a reason, never read (README, "Security model").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from boneflow.errors import BoneflowError

CLASSES = ("not fractured", "fractured")  # label index = position; fractured (1) is positive. The one list.
POSITIVE = CLASSES[1]
SPLITS = ("train", "val", "test")

# How deep below --data-dir the split folders may sit (Kaggle: 2 levels).
_MAX_SEARCH_DEPTH = 4


class LayoutError(BoneflowError):
    """The folder does not hold train/val/test with both class folders."""


@dataclass(frozen=True)
class ImageEntry:
    relpath: str  # POSIX path relative to the dataset root
    split: str
    label: int


@dataclass
class Layout:
    root: Path
    entries: list[ImageEntry]  # files in <split>/<class>/, sorted by relpath
    stray_files: list[str] = field(default_factory=list)
    stray_folders: list[str] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)
    # {"path", "reason", "detail"}: symlink_outside_root, symlink_loop, non_utf8_name, unreadable_folder
    skipped: list[dict] = field(default_factory=list)


@dataclass
class _Tree:
    """What a walk of the dataset root found, relative POSIX paths in walk order."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (relpath, "dir" | "file" | "other")
    skipped: list[dict] = field(default_factory=list)

    def skip(self, path: str, reason: str, detail: str) -> None:
        self.skipped.append({"path": path, "reason": reason, "detail": detail})


def _printable(rel: str) -> str:
    """A relative path that JSON and logs can carry: undecodable bytes shown as \\xNN."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _classify(path: Path, rel: str, real_root: Path, ancestors: frozenset, tree: _Tree) -> str | None:
    """'dir' | 'file' | 'other' for one directory entry, or None when it is skipped (recorded)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        tree.skip(_printable(rel), "non_utf8_name", "the file name is not valid UTF-8; rename it to include it")
        return None
    if path.is_symlink() and not _inside(path.resolve(), real_root):
        tree.skip(
            rel,
            "symlink_outside_root",
            f"symlink {rel} points to {_printable(os.readlink(path))}, outside the dataset root; not followed",
        )
        return None
    if path.is_dir():
        if path.resolve() in ancestors:
            tree.skip(rel, "symlink_loop", f"symlink {rel} leads back to a folder above it; not followed")
            return None
        return "dir"
    return "file" if path.is_file() else "other"


def _walk(root: Path) -> _Tree:
    """Every entry under `root`, sorted like `sorted(root.rglob("*"))`, following only the
    symlinks that stay inside the root."""
    real_root = root.resolve()
    tree = _Tree()
    stack = [("", root, frozenset({real_root}))]
    while stack:
        rel_dir, folder, ancestors = stack.pop()
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:  # permissions: report it, keep walking the rest
            tree.skip(_printable(rel_dir) or ".", "unreadable_folder", f"cannot list the folder ({err.strerror})")
            continue
        below = []
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = folder / name
            kind = _classify(path, rel, real_root, ancestors, tree)
            if kind is None:
                continue
            tree.items.append((rel, kind))
            if kind == "dir":
                below.append((rel, path, ancestors | {path.resolve()}))
        stack.extend(reversed(below))
    tree.items.sort(key=lambda item: item[0].split("/"))
    return tree


def dataset_files(root: Path) -> list[str]:
    """Relative paths of the regular files under `root` that the walk may read."""
    return [rel for rel, kind in _walk(Path(root)).items if kind == "file"]


def check_classes_present(split_counts: Mapping[str, Mapping[str, int]]) -> None:
    """Raise LayoutError naming the class and split when a split has no images of a class.
    `split_counts` is {split: {class name: number of images}}; a missing class counts as 0."""
    missing = [(split, cls) for split, counts in split_counts.items() for cls in CLASSES if not counts.get(cls, 0)]
    if missing:
        named = "; ".join(f"no {cls!r} images in {split}" for split, cls in missing)
        raise LayoutError(
            f"{named}. Training and the gate need both classes ({', '.join(map(repr, CLASSES))}) "
            "in every split: add images of the missing class (check cleaning_report.json "
            "for excluded or skipped files), or choose another split policy."
        )


def find_dataset_root(data_dir: Path) -> Path:
    """The folder under `data_dir` (or `data_dir` itself) holding the split folders."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise LayoutError(
            f"--data-dir {data_dir}: not a folder. Point it at a copy of the dataset (any folder above train/val/test)."
        )
    level = [data_dir]
    top = data_dir.resolve()  # the search never leaves the folder it was given
    searched: list[Path] = []
    for _ in range(_MAX_SEARCH_DEPTH + 1):
        for folder in level:
            searched.append(folder)
            if any((folder / s).is_dir() for s in SPLITS):
                return folder
        level = sorted(
            p
            for f in level
            for p in f.iterdir()
            if p.is_dir() and not p.name.startswith(".") and _inside(p.resolve(), top)
        )
        if not level:
            break
    shown = ", ".join(str(p) for p in searched[:6]) + (" ..." if len(searched) > 6 else "")
    raise LayoutError(
        f"No folder with {'/'.join(SPLITS)} split folders under {data_dir} "
        f"(searched {len(searched)} folders, {_MAX_SEARCH_DEPTH} levels deep: {shown}). "
        f"Expected <root>/{{train,val,test}}/{{{', '.join(CLASSES)}}}/<images>."
    )


def check_layout(root: Path) -> None:
    """Raise LayoutError naming every missing split or class folder under `root`."""
    missing = [f"{s}/" for s in SPLITS if not (root / s).is_dir()]
    missing += [f"{s}/{c}/" for s in SPLITS if (root / s).is_dir() for c in CLASSES if not (root / s / c).is_dir()]
    if missing:
        raise LayoutError(
            f"Dataset root {root}: missing folder(s) {', '.join(missing)}. "
            f"Expected {{train,val,test}}/{{{', '.join(CLASSES)}}}/ under the root; "
            f"fix the copy or point --data-dir at a complete one."
        )


def scan_layout(data_dir: Path) -> Layout:
    """Find the root, check it, and list images plus stray/empty things (relative paths)."""
    root = find_dataset_root(Path(data_dir))
    check_layout(root)
    tree = _walk(root)
    layout = Layout(root=root, entries=[], skipped=tree.skipped)
    for rel, kind in tree.items:
        path, parts = root / rel, tuple(rel.split("/"))
        if kind == "dir":
            if not any(path.iterdir()):
                layout.empty_folders.append(rel)
            in_place = parts[0] in SPLITS and (len(parts) == 1 or (len(parts) == 2 and parts[1] in CLASSES))
            parent_is_stray = any(rel.startswith(s + "/") for s in layout.stray_folders)
            if not in_place and not parent_is_stray:
                layout.stray_folders.append(rel)
            continue
        if kind != "file":  # sockets, broken links: not data
            layout.stray_files.append(rel)
            continue
        if len(parts) == 3 and parts[0] in SPLITS and parts[1] in CLASSES:
            layout.entries.append(ImageEntry(rel, parts[0], CLASSES.index(parts[1])))
        else:
            layout.stray_files.append(rel)
    return layout
