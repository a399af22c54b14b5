"""Synthetic X-ray-like dataset in the Kaggle layout, with planted defects and cross-split copies.

Each image: dark noisy background, a dim soft-tissue band, one or two long bones (bright cortex,
darker medulla, knobbly ends, low-frequency texture) at a random angle and position. A fractured
bone has a wide dark gap across its shaft (random place near the middle, random tilt, a little
jagged) with the far fragment shifted sideways, visible at 64 px; some intact bones carry a
faint thin line (a nutrient canal look-alike) that only partly crosses the shaft. Tuned so a
random-init ResNet18 at 64 px reaches >= 0.90 leak-free test accuracy in 3 epochs on the
default 2,500 images (measured 0.92, fractured recall 0.96; see README "Accuracy").

Planted on top (with `defects`): undecodable and odd files, near copies across splits
(re-encoded, resized, mirrored), and the Kaggle set's duplicate structure (synthetic_duplicates:
`N (1).jpg` / `N - Copy.jpg` byte-identical copies within and across splits, and families of
`N-rotated1-rotated2.jpg` small-angle rotated copies spanning train/val/test).

What was planted is returned and written to `PATH/planted.json` (outside the dataset root, so
the audit never sees it). Same seed → same bytes.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from boneflow.data.layout import CLASSES, SPLITS
from boneflow.data.synthetic_duplicates import family_count, plant_duplicates

KAGGLE_DIR = "Bone_Fracture_Binary_Classification"
_SPLIT_P = (0.70, 0.15, 0.15)
_P_FRACTURED = 0.45  # mild imbalance, like real collections


def dataset_root(path: Path) -> Path:
    return Path(path) / KAGGLE_DIR / KAGGLE_DIR


def _bone(img: np.ndarray, rng: np.random.Generator, *, fractured: bool, side: float) -> None:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ux, uy = np.cos(angle), np.sin(angle)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    half_len = 0.5 * np.hypot(w, h) * rng.uniform(0.45, 0.7) / 1.0
    radius = side * rng.uniform(0.06, 0.10)
    t = (xx - cx) * ux + (yy - cy) * uy  # along the shaft
    d = -(xx - cx) * uy + (yy - cy) * ux  # across the shaft
    # The break line (also used for the intact distractor): a random place and tilt on the shaft.
    at = rng.uniform(-0.25, 0.25) * half_len
    tilt = rng.uniform(-0.5, 0.5)
    line = (t - at) * np.cos(tilt) + d * np.sin(tilt)
    if fractured:
        # A displaced fracture: the far fragment is shifted sideways, so the shaft's outline
        # steps at the break -- the cue a radiologist (and a small CNN at 64 px) can see.
        d = np.where(line > 0, d - radius * rng.choice([-1, 1]) * rng.uniform(1.0, 1.5), d)
    # soft tissue around the bone
    tissue = np.exp(-((d / (radius * rng.uniform(2.5, 4.0))) ** 2)) * rng.uniform(35, 60)
    img += tissue * (np.abs(t) < half_len * 1.3)
    # shaft widening towards the ends, knobs at both ends
    rad_t = radius * (1 + 0.35 * (np.abs(t) / half_len) ** 4)
    inside = (np.abs(d) < rad_t) & (np.abs(t) < half_len)
    for end in (-1, 1):
        ex, ey = cx + end * half_len * ux, cy + end * half_len * uy
        knob = (xx - ex) ** 2 + (yy - ey) ** 2 < (radius * rng.uniform(1.4, 1.9)) ** 2
        inside |= knob
    rel = np.clip(np.abs(d) / rad_t, 0, 1)
    brightness = rng.uniform(150, 220)
    profile = brightness * (0.62 + 0.38 * rel**3)  # bright cortex, darker medulla
    texture = (
        np.asarray(
            Image.fromarray((rng.random((max(2, h // 8), max(2, w // 8))) * 255).astype(np.uint8)).resize(
                (w, h), Image.Resampling.BICUBIC
            ),
            dtype=np.float32,
        )
        / 255.0
    )
    bone = profile * (0.85 + 0.3 * texture) * inside
    jag = np.sin(d / max(radius, 1) * rng.uniform(3, 7)) * side * 0.006
    if fractured:
        gap = np.abs(line + jag) < side * rng.uniform(0.05, 0.08)
        bone[gap & (np.abs(d) < rad_t * 1.2)] = 0
    elif rng.random() < 0.25:  # distractor: thin faint line crossing only part of the shaft
        canal = (np.abs(line) < side * 0.006) & (d > rad_t * rng.uniform(-0.2, 0.3))
        bone[canal & inside] *= 0.7
    np.maximum(img, img * 0 + bone + tissue * inside, out=img)


def _radiograph(rng: np.random.Generator, *, fractured: bool, full_size: bool) -> np.ndarray:
    lo, hi = (256, 1100) if full_size else (80, 400)
    long_side = int(rng.integers(lo, hi + 1))
    aspect = rng.uniform(0.6, 1.0)
    short_side = max(64, int(long_side * aspect))  # defects aside, every image passes min_side=64
    w, h = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    # draw at most ~400 px, then upscale: full-size images stay cheap to make
    scale = min(1.0, 400 / max(w, h))
    gw, gh = max(8, int(w * scale)), max(8, int(h * scale))
    grad = np.linspace(rng.uniform(5, 25), rng.uniform(5, 35), gh, dtype=np.float32)[:, None]
    img = np.repeat(grad, gw, axis=1)
    side = float(min(gw, gh))
    _bone(img, rng, fractured=fractured, side=side)
    if rng.random() < 0.2:
        _bone(img, rng, fractured=False, side=side)  # a second, intact bone
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    if (gw, gh) != (w, h):
        pil = pil.resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(pil, dtype=np.float32) + rng.normal(0, 4, (h, w)).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def write_demo_dataset(
    path: Path, *, n: int = 2500, seed: int = 0, full_size: bool = False, defects: bool = True, families: int = 8
) -> dict:
    """Write `n` distinct radiographs (plus, with `defects`, the planted defects and copies)
    under `path/Bone_Fracture_Binary_Classification/Bone_Fracture_Binary_Classification/`.
    `full_size`: 256-1100 px RGB JPEGs (benchmarks) instead of 80-400 px. `families`: rotated-copy
    families (and as many stand-alone exact copies), at most one per 40 images. Returns what was
    planted (also written to `path/planted.json`)."""
    path = Path(path)
    root = dataset_root(path)
    if root.exists():
        shutil.rmtree(root)
    for s in SPLITS:
        for c in CLASSES:
            (root / s / c).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    splits = rng.choice(len(SPLITS), size=n, p=_SPLIT_P)
    labels = (rng.random(n) < _P_FRACTURED).astype(int)
    planted: dict = {
        "root": root.relative_to(path).as_posix(),
        "n": n,
        "seed": seed,
        "images": [],
        "defects": [],
        "copies": [],
        "duplicates": [],
        "rotated_families": [],
        "empty_folders": [],
        "stray_files": [],
    }

    def rel(split: str, label: int, name: str) -> str:
        return f"{split}/{CLASSES[label]}/{name}"

    # Odd-but-valid encodings replace some of the first train/val/test images.
    odd = ["cmyk_jpeg", "rgba_png", "palette_png", "png16", "rgb_grey_jpeg"] if defects else []
    for k in range(n):
        split, label = SPLITS[splits[k]], int(labels[k])
        grey = Image.fromarray(_radiograph(rng, fractured=bool(label), full_size=full_size))
        kind = odd[k] if k < len(odd) else ("png" if rng.random() < 0.15 else "jpeg")
        if kind == "cmyk_jpeg":
            data, name = _jpeg(grey.convert("RGB").convert("CMYK"), 92), f"img_{k:05d}.jpg"
        elif kind == "rgba_png":
            rgba = grey.convert("RGBA")
            alpha = np.full(grey.size[::-1], 255, np.uint8)
            alpha[:, : grey.size[0] // 6] = 0  # a transparent left margin: composited on black
            rgba.putalpha(Image.fromarray(alpha))
            data, name = _png(rgba), f"img_{k:05d}.png"
        elif kind == "palette_png":
            data, name = _png(grey.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)), f"img_{k:05d}.png"
        elif kind == "png16":
            wide = (np.asarray(grey, dtype=np.uint16) * 16).astype(np.uint16)  # 12-bit range in 16 bits
            data, name = _png(Image.fromarray(wide)), f"img_{k:05d}.png"
        elif kind == "rgb_grey_jpeg":
            data, name = _jpeg(grey.convert("RGB"), 90), f"img_{k:05d}.jpg"
        elif kind == "png":
            data, name = _png(grey), f"img_{k:05d}.png"
        else:
            src = grey.convert("RGB") if (full_size or rng.random() < 0.3) else grey
            data, name = _jpeg(src, int(rng.integers(80, 96))), f"img_{k:05d}.jpg"
        r = rel(split, label, name)
        (root / r).write_bytes(data)
        planted["images"].append({"path": r, "split": split, "label": label})
        if kind in odd:
            planted["defects"].append({"path": r, "kind": kind, "expect": "kept"})

    if defects:
        _plant_defects(root, rng, planted, n, full_size)
        plant_duplicates(root, rng, planted, families=family_count(n, families))
    (path / "planted.json").write_text(json.dumps(planted, indent=2))
    return planted


def _plant_defects(root: Path, rng: np.random.Generator, planted: dict, n: int, full_size: bool) -> None:
    nxt = iter(range(n, n + 10_000))

    def new(split: str, label: int, ext: str) -> str:
        return f"{split}/{CLASSES[label]}/img_{next(nxt):05d}.{ext}"

    def sample(fractured: bool) -> Image.Image:
        return Image.fromarray(_radiograph(rng, fractured=fractured, full_size=full_size))

    excluded = []
    good = _jpeg(sample(True), 90)
    excluded.append((new("train", 1, "jpg"), good[: int(len(good) * 0.6)], "truncated_jpeg", "truncated"))
    excluded.append((new("val", 0, "jpg"), b"", "zero_byte", "zero_byte"))
    excluded.append(
        (new("test", 1, "jpg"), b"<html><body>403 Forbidden</body></html>\n", "not_an_image", "not_an_image")
    )
    excluded.append((new("train", 0, "jpg"), _jpeg(sample(False).resize((48, 40)), 90), "too_small", "too_small"))
    bomb = _png(Image.new("L", (8000, 7000), 0))  # 56 Mpx > default 50 Mpx, ~60 kB on disk
    excluded.append((new("train", 1, "png"), bomb, "decompression_bomb", "decompression_bomb"))
    broken = bytearray(_png(sample(False)))
    idat = broken.find(b"IDAT")
    broken[idat + 4 : idat + 6] = b"\xff\xff"  # a valid PNG header, but the pixel stream is not zlib
    excluded.append((new("test", 0, "png"), bytes(broken), "undecodable_png", "undecodable"))
    for relpath, data, kind, reason in excluded:
        (root / relpath).write_bytes(data)
        planted["defects"].append({"path": relpath, "kind": kind, "expect": f"excluded:{reason}"})

    # Copies of train originals into val/test (same class), one per kind and target split.
    train_jpegs = [
        im
        for im in planted["images"]
        if im["split"] == "train"
        and im["path"].endswith(".jpg")
        and not any(d["path"] == im["path"] for d in planted["defects"])
    ]
    kinds = ["exact", "reencoded", "resized", "mirrored"]
    picks = rng.choice(len(train_jpegs), size=2 * len(kinds), replace=False)
    for j, pick in enumerate(picks):
        orig = train_jpegs[int(pick)]
        kind, split = kinds[j % len(kinds)], ("test", "val")[j // len(kinds)]
        data = (root / orig["path"]).read_bytes()
        img = Image.open(io.BytesIO(data))
        img.load()
        if kind == "reencoded":
            data = _jpeg(img, 55)
        elif kind == "resized":
            data = _jpeg(
                img.resize((max(64, int(img.width * 0.7)), max(64, int(img.height * 0.7))), Image.Resampling.BICUBIC),
                90,
            )
        elif kind == "mirrored":
            data = _jpeg(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90)
        relpath = new(split, orig["label"], "jpg")
        (root / relpath).write_bytes(data)
        planted["copies"].append({"original": orig["path"], "copy": relpath, "kind": kind})

    (root / "extras").mkdir(exist_ok=True)
    planted["empty_folders"].append("extras")
    (root / "test" / "notes.txt").write_text("exported from PACS\n")
    planted["stray_files"].append("test/notes.txt")
