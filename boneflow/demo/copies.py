"""Kaggle-style duplicates for the demo set: byte-identical copies under other names, families
of small-angle rotated copies and of large-angle turned copies, as the README's "The two
commands" describes them. Turned copies are saved as RGB JPEGs at quality 95 (4:2:0, the
quantisation tables of the Kaggle files, see ../shared/data/kaggle-bone-sample), and a copy of a
copy is made from that JPEG, so re-encoding losses chain as they did there.

Every planted file is recorded in `planted["duplicates"]` as `{"copy", "of", "base", "kind":
"exact" | "rotated" | "turned", "angles"}` (turned copies add `"mirrored"`): `of` is the file it
was made from (the base, for a turned copy), `base` the family's original image, `angles` the
turns from the base to the copy's pixels (degrees, counter-clockwise; `[]` for an exact copy of
the base). Each family is listed as `{"base", "members"}` (the base included) in
`planted["rotated_families"]` or `planted["turned_families"]`. tests/demo_helpers.py turns
planted.json into the ground-truth groups that duplicate grouping should find.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from boneflow.intake.layout import SPLITS

ANGLE_RANGE = (5.0, 30.0)  # degrees, either sign
TURN_RANGE = (22.5, 45.0)  # degrees of each of the two turns of a large-angle copy (content scale >= 0.5)
IMAGES_PER_FAMILY = 40  # at most one family per 40 distinct images: the copies stay a small fraction
_SPLIT_P = (0.70, 0.15, 0.15)


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def rotated_copy(data: bytes, angle: float) -> bytes:
    """The image in `data` turned by `angle` degrees (counter-clockwise) on an expanded black
    canvas, squashed to 224 x 224 and saved as an RGB JPEG, quality 95."""
    img = Image.open(io.BytesIO(data))
    turned = img.convert("RGB").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    return jpeg_bytes(turned.resize((224, 224), Image.Resampling.BICUBIC), 95)


def turned_copy(data: bytes, angles: list[float], *, mirrored: bool) -> bytes:
    """The image in `data`, mirrored left-right first when asked, then turned by each angle as
    `rotated_copy` turns it."""
    if mirrored:
        img = Image.open(io.BytesIO(data)).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        data = png_bytes(img)  # lossless: the mirror adds no second JPEG loss
    for angle in angles:
        data = rotated_copy(data, angle)
    return data


def family_count(n: int, families: int) -> int:
    return min(families, max(1, n // IMAGES_PER_FAMILY)) if families > 0 else 0


def plant_duplicates(root: Path, rng: np.random.Generator, planted: dict, *, families: int) -> None:
    """Plant `families` rotated-copy families and as many stand-alone exact copies (alternately
    within and across splits) on images not otherwise planted on; record them in planted."""
    taken = {d["path"] for d in planted["defects"]} | {c["original"] for c in planted["copies"]}
    candidates = [im for im in planted["images"] if im["path"] not in taken]
    families = min(families, len(candidates) // 2)
    picks = rng.choice(len(candidates), size=2 * families, replace=False)
    for f in range(families):
        _plant_family(root, rng, planted, candidates[int(picks[f])], chained=f % 2 == 0)
    for e in range(families):
        src = candidates[int(picks[families + e])]
        others = [s for s in SPLITS if s != src["split"]]
        split = src["split"] if e % 2 == 0 else others[int(rng.integers(len(others)))]
        _write_exact(root, rng, planted, src["path"], split, base=src["path"], angles=[])
    used = {candidates[int(i)]["path"] for i in picks}
    spare = [im for im in candidates if im["path"] not in used]
    for f, i in enumerate(rng.choice(len(spare), size=min(families, len(spare)), replace=False).tolist()):
        _plant_turned_family(root, rng, planted, spare[i], quarter=f % 2 == 1)


def _plant_family(root: Path, rng: np.random.Generator, planted: dict, base: dict, *, chained: bool) -> None:
    """A base image and 2-5 copies: the first two rotated and placed in the two splits the base
    is not in (in chained families the second is a rotated copy of the first), the rest each an
    exact copy of or a rotated copy of an earlier member, anywhere."""
    # (path, angle chain) of the base and its rotated copies
    members: list[tuple[str, list[float]]] = [(base["path"], [])]
    others = [s for s in SPLITS if s != base["split"]]
    rng.shuffle(others)
    size = int(rng.integers(3, 7))
    for j in range(1, size):
        if j <= 2:
            parent = members[-1] if (j == 2 and chained) else members[0]
            split, kind = others[j - 1], "rotated"
        else:
            parent = members[int(rng.integers(len(members)))]
            split, kind = SPLITS[int(rng.choice(len(SPLITS), p=_SPLIT_P))], ("exact" if j % 2 else "rotated")
        if kind == "exact":
            _write_exact(root, rng, planted, parent[0], split, base=base["path"], angles=parent[1])
            continue
        angle = round(float(rng.uniform(*ANGLE_RANGE)) * float(rng.choice([-1, 1])), 2)
        siblings = sum(1 for d in planted["duplicates"] if d["of"] == parent[0] and d["kind"] == "rotated")
        rel = f"{split}/{_class_of(base['path'])}/{Path(parent[0]).stem}-rotated{siblings + 1}.jpg"
        (root / rel).write_bytes(rotated_copy((root / parent[0]).read_bytes(), angle))
        chain = [*parent[1], angle]
        planted["duplicates"].append(
            {"copy": rel, "of": parent[0], "base": base["path"], "kind": "rotated", "angles": chain}
        )
        members.append((rel, chain))
    copies = [d["copy"] for d in planted["duplicates"] if d["base"] == base["path"]]
    planted["rotated_families"].append({"base": base["path"], "members": [base["path"], *copies]})


def _plant_turned_family(root: Path, rng: np.random.Generator, planted: dict, base: dict, *, quarter: bool) -> None:
    """A base image and 2-3 large-angle copies of it, each made from the base directly by two
    turns of `TURN_RANGE` in one direction (a quarter turn between them when `quarter`), every
    other one mirrored first; the first two in the two splits the base is not in, the third anywhere."""
    path = base["path"]
    others = [s for s in SPLITS if s != base["split"]]
    rng.shuffle(others)
    members = [path]
    sign = float(rng.choice([-1, 1]))
    for k in range(int(rng.integers(2, 4))):
        split = others[k] if k < 2 else SPLITS[int(rng.choice(len(SPLITS), p=_SPLIT_P))]
        turns = [round(sign * float(rng.uniform(*TURN_RANGE)), 2) for _ in range(2)]
        angles = [turns[0], sign * 90.0, turns[1]] if quarter else turns
        rel = f"{split}/{_class_of(path)}/{Path(path).stem}-turned{k + 1}.jpg"
        mirrored = k % 2 == 1
        (root / rel).write_bytes(turned_copy((root / path).read_bytes(), angles, mirrored=mirrored))
        entry = {"copy": rel, "of": path, "base": path, "kind": "turned", "angles": angles, "mirrored": mirrored}
        planted["duplicates"].append(entry)
        members.append(rel)
    planted["turned_families"].append({"base": path, "members": members})


def _write_exact(
    root: Path, rng: np.random.Generator, planted: dict, source: str, split: str, *, base: str, angles: list[float]
) -> None:
    src = Path(source)
    folder = root / split / _class_of(source)
    first = [" (1)", " - Copy"] if rng.random() < 0.5 else [" - Copy", " (1)"]
    suffixes = first + [f"{s} ({k})" for k in range(1, 100) for s in (" - Copy", "") if (s, k) != ("", 1)]
    name = next(f"{src.stem}{s}{src.suffix}" for s in suffixes if not (folder / f"{src.stem}{s}{src.suffix}").exists())
    rel = f"{split}/{_class_of(source)}/{name}"
    (root / rel).write_bytes((root / source).read_bytes())
    planted["duplicates"].append({"copy": rel, "of": source, "base": base, "kind": "exact", "angles": list(angles)})


def _class_of(relpath: str) -> str:
    return relpath.split("/")[1]
