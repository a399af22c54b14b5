"""Dataset layout: where train/val/test and the class folders are, and what else lies there.

Kaggle's copy nests `Bone_Fracture_Binary_Classification` twice, and users point `--data-dir`
at any folder above the splits, so we search downwards (breadth-first, a few levels) for the
folder that holds the split folders. Everything that is not `<split>/<class>/<file>` is
reported as stray rather than silently ignored or silently trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from boneflow.errors import BoneflowError

CLASSES = ("not fractured", "fractured")  # label index = position; fractured (1) is positive
POSITIVE = "fractured"
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


def _looks_like_root(folder: Path) -> bool:
    return any((folder / s).is_dir() for s in SPLITS)


def find_dataset_root(data_dir: Path) -> Path:
    """The folder under `data_dir` (or `data_dir` itself) holding the split folders."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise LayoutError(f"--data-dir {data_dir}: not a folder. Point it at a copy of the dataset "
                          f"(any folder above train/val/test).")
    level = [data_dir]
    searched: list[Path] = []
    for _ in range(_MAX_SEARCH_DEPTH + 1):
        for folder in level:
            searched.append(folder)
            if _looks_like_root(folder):
                return folder
        level = sorted(p for f in level for p in f.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not level:
            break
    shown = ", ".join(str(p) for p in searched[:6]) + (" ..." if len(searched) > 6 else "")
    raise LayoutError(f"No folder with {'/'.join(SPLITS)} split folders under {data_dir} "
                      f"(searched {len(searched)} folders, {_MAX_SEARCH_DEPTH} levels deep: {shown}). "
                      f"Expected <root>/{{train,val,test}}/{{{', '.join(CLASSES)}}}/<images>.")


def check_layout(root: Path) -> None:
    """Raise LayoutError naming every missing split or class folder under `root`."""
    missing = [f"{s}/" for s in SPLITS if not (root / s).is_dir()]
    missing += [f"{s}/{c}/" for s in SPLITS if (root / s).is_dir() for c in CLASSES
                if not (root / s / c).is_dir()]
    if missing:
        raise LayoutError(f"Dataset root {root}: missing folder(s) {', '.join(missing)}. "
                          f"Expected {{train,val,test}}/{{{', '.join(CLASSES)}}}/ under the root; "
                          f"fix the copy or point --data-dir at a complete one.")


def scan_layout(data_dir: Path) -> Layout:
    """Find the root, check it, and list images plus stray/empty things (relative paths)."""
    root = find_dataset_root(Path(data_dir))
    check_layout(root)
    layout = Layout(root=root, entries=[])
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        parts = rel.parts
        if path.is_dir():
            if not any(path.iterdir()):
                layout.empty_folders.append(rel.as_posix())
            in_place = (len(parts) == 1 and parts[0] in SPLITS) or (
                len(parts) == 2 and parts[0] in SPLITS and parts[1] in CLASSES)
            parent_is_stray = any(rel.as_posix().startswith(s + "/") for s in layout.stray_folders)
            if not in_place and not parent_is_stray:
                layout.stray_folders.append(rel.as_posix())
            continue
        if not path.is_file():  # sockets, broken links: not data
            layout.stray_files.append(rel.as_posix())
            continue
        if len(parts) == 3 and parts[0] in SPLITS and parts[1] in CLASSES:
            layout.entries.append(ImageEntry(rel.as_posix(), parts[0], CLASSES.index(parts[1])))
        else:
            layout.stray_files.append(rel.as_posix())
    return layout
