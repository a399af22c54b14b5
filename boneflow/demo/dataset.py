"""Synthetic X-ray-like dataset in the Kaggle layout (`boneflow demo-data`), with planted defects
and cross-split copies (README, "The two commands"; the copies in demo/copies.py).

Each image is a picture from demo/bones.py at a random size, tuned so a random-init ResNet18 at
64 px reaches >= 0.90 leak-free test accuracy in 3 epochs (README, "Performance": Accuracy).
What was planted is returned and written to `PATH/planted.json` (outside the dataset root, so
the audit never sees it). Same seed → same bytes.
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from boneflow.demo.bones import draw_radiograph
from boneflow.demo.copies import _SPLIT_P, family_count, jpeg_bytes, plant_duplicates, png_bytes
from boneflow.intake.layout import CLASSES, SPLITS

KAGGLE_DIR = "Bone_Fracture_Binary_Classification"
_P_FRACTURED = 0.45  # mild imbalance, like real collections


def dataset_root(path: Path) -> Path:
    return Path(path) / KAGGLE_DIR / KAGGLE_DIR


def _radiograph(rng: np.random.Generator, *, fractured: bool, full_size: bool) -> np.ndarray:
    lo, hi = (256, 1100) if full_size else (80, 400)
    long_side = int(rng.integers(lo, hi + 1))
    aspect = rng.uniform(0.6, 1.0)
    short_side = max(64, int(long_side * aspect))  # defects aside, every image passes min_side=64
    w, h = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    return draw_radiograph(rng, fractured=fractured, width=w, height=h)


# Odd-but-valid encodings that replace the first images (with `defects`): all must be kept.
_ODD_KINDS = ("cmyk_jpeg", "rgba_png", "palette_png", "png16", "rgb_grey_jpeg")


def write_demo_dataset(
    path: Path, *, n: int = 2500, seed: int = 0, full_size: bool = False, defects: bool = True, families: int = 8
) -> dict:
    """Write `n` distinct radiographs (plus, with `defects`, the planted defects and copies)
    under `path/Bone_Fracture_Binary_Classification/Bone_Fracture_Binary_Classification/`.
    `full_size`: 256-1100 px RGB JPEGs (benchmarks) instead of 80-400 px. `families`: rotated-copy
    families (and as many stand-alone exact copies and large-angle turned families), at most one
    per 40 images. Returns what was planted (also written to `path/planted.json`)."""
    path, root = Path(path), dataset_root(path)
    if root.exists():
        shutil.rmtree(root)
    for split, cls in itertools.product(SPLITS, CLASSES):
        (root / split / cls).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    planted: dict = {"root": root.relative_to(path).as_posix(), "n": n, "seed": seed}
    keys = ("images", "defects", "copies", "duplicates", "rotated_families", "turned_families", "empty_folders")
    planted.update({key: [] for key in (*keys, "stray_files")})
    _write_images(root, rng, planted, n=n, full_size=full_size, odd=_ODD_KINDS if defects else ())
    if defects:
        _plant_defects(root, rng, planted, n, full_size)
        plant_duplicates(root, rng, planted, families=family_count(n, families))
    (path / "planted.json").write_text(json.dumps(planted, indent=2))
    return planted


def _write_images(
    root: Path, rng: np.random.Generator, planted: dict, *, n: int, full_size: bool, odd: tuple[str, ...]
) -> None:
    """The `n` distinct images, each in a random split and class; the first ones in the `odd`
    encodings, the rest PNG or JPEG."""
    splits = rng.choice(len(SPLITS), size=n, p=_SPLIT_P)
    labels = (rng.random(n) < _P_FRACTURED).astype(int)
    for k in range(n):
        split, label = SPLITS[splits[k]], int(labels[k])
        grey = Image.fromarray(_radiograph(rng, fractured=bool(label), full_size=full_size))
        kind = odd[k] if k < len(odd) else ("png" if rng.random() < 0.15 else "jpeg")
        data, ext = _encode(grey, kind, rng, full_size=full_size)
        rel = f"{split}/{CLASSES[label]}/img_{k:05d}.{ext}"
        (root / rel).write_bytes(data)
        planted["images"].append({"path": rel, "split": split, "label": label})
        if kind in odd:
            planted["defects"].append({"path": rel, "kind": kind, "expect": "kept"})


def _encode(grey: Image.Image, kind: str, rng: np.random.Generator, *, full_size: bool) -> tuple[bytes, str]:
    """(file bytes, extension) of the greyscale picture in the encoding `kind`."""
    if kind == "cmyk_jpeg":
        return jpeg_bytes(grey.convert("RGB").convert("CMYK"), 92), "jpg"
    if kind == "rgba_png":
        rgba = grey.convert("RGBA")
        alpha = np.full(grey.size[::-1], 255, np.uint8)
        alpha[:, : grey.size[0] // 6] = 0  # a transparent left margin: composited on black
        rgba.putalpha(Image.fromarray(alpha))
        return png_bytes(rgba), "png"
    if kind == "palette_png":
        return png_bytes(grey.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)), "png"
    if kind == "png16":
        wide = (np.asarray(grey, dtype=np.uint16) * 16).astype(np.uint16)  # 12-bit range in 16 bits
        return png_bytes(Image.fromarray(wide)), "png"
    if kind == "rgb_grey_jpeg":
        return jpeg_bytes(grey.convert("RGB"), 90), "jpg"
    if kind == "png":
        return png_bytes(grey), "png"
    src = grey.convert("RGB") if (full_size or rng.random() < 0.3) else grey
    return jpeg_bytes(src, int(rng.integers(80, 96))), "jpg"


def _plant_defects(root: Path, rng: np.random.Generator, planted: dict, n: int, full_size: bool) -> None:
    nxt = iter(range(n, n + 10_000))

    def new(split: str, label: int, ext: str) -> str:
        return f"{split}/{CLASSES[label]}/img_{next(nxt):05d}.{ext}"

    def sample(fractured: bool) -> Image.Image:
        return Image.fromarray(_radiograph(rng, fractured=fractured, full_size=full_size))

    good = jpeg_bytes(sample(True), 90)
    excluded = [
        (new("train", 1, "jpg"), good[: int(len(good) * 0.6)], "truncated_jpeg", "truncated"),
        (new("val", 0, "jpg"), b"", "zero_byte", "zero_byte"),
        (new("test", 1, "jpg"), b"<html><body>403 Forbidden</body></html>\n", "not_an_image", "not_an_image"),
        (new("train", 0, "jpg"), jpeg_bytes(sample(False).resize((48, 40)), 90), "too_small", "too_small"),
        # 56 Mpx (over the default 50 Mpx) of black, ~60 kB on disk
        (new("train", 1, "png"), png_bytes(Image.new("L", (8000, 7000))), "decompression_bomb", "decompression_bomb"),
    ]
    broken = bytearray(png_bytes(sample(False)))
    idat = broken.find(b"IDAT")
    broken[idat + 4 : idat + 6] = b"\xff\xff"  # a valid PNG header, but the pixel stream is not zlib
    excluded.append((new("test", 0, "png"), bytes(broken), "undecodable_png", "undecodable"))
    for relpath, data, kind, reason in excluded:
        (root / relpath).write_bytes(data)
        planted["defects"].append({"path": relpath, "kind": kind, "expect": f"excluded:{reason}"})

    # Copies of train originals into val/test (same class), one per kind and target split.
    skip = {d["path"] for d in planted["defects"]}
    train_jpegs = [
        r for r in planted["images"] if r["split"] == "train" and r["path"].endswith(".jpg") and r["path"] not in skip
    ]
    kinds = ["exact", "reencoded", "resized", "mirrored"]
    picks = rng.choice(len(train_jpegs), size=2 * len(kinds), replace=False)
    for j, pick in enumerate(picks):
        orig = train_jpegs[int(pick)]
        kind, split = kinds[j % len(kinds)], ("test", "val")[j // len(kinds)]
        data = (root / orig["path"]).read_bytes()
        img = Image.open(io.BytesIO(data))
        if kind == "reencoded":
            data = jpeg_bytes(img, 55)
        elif kind == "resized":
            size = (max(64, int(img.width * 0.7)), max(64, int(img.height * 0.7)))
            data = jpeg_bytes(img.resize(size, Image.Resampling.BICUBIC), 90)
        elif kind == "mirrored":
            data = jpeg_bytes(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90)
        relpath = new(split, orig["label"], "jpg")
        (root / relpath).write_bytes(data)
        planted["copies"].append({"original": orig["path"], "copy": relpath, "kind": kind})

    (root / "extras").mkdir(exist_ok=True)
    planted["empty_folders"].append("extras")
    (root / "test" / "notes.txt").write_text("exported from PACS\n")
    planted["stray_files"].append("test/notes.txt")
