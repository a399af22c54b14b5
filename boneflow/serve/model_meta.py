"""Bounds on a published model.json before any of its values is used (README, "Security
model"): its numbers size the network's head, the decoded image and every activation, so a
hostile or broken file could ask for gigabytes. Keys not named here are left alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeGuard

from boneflow.intake.layout import POSITIVE
from boneflow.serve.errors import ModelNotFoundError

MAX_MODEL_JSON_BYTES = 1 << 20  # a real one is ~2 kB
MAX_CLASS_NAME = 128
MIN_SIZE = 16  # ResNet18 downsamples 32x; smaller inputs are not an X-ray anyway
# ResNet18 activations at 1024 px take ~1 GB per image; the config allows crops up to 512
# (packed 585), the default is 224 (packed 256).
MAX_PACK_SIZE = 1024


def read_model_meta(path: Path, *, source: str) -> dict[str, Any]:
    """Parse and check model.json at `path`; `source` names it in errors (runs/<id>/model.json)."""
    size = Path(path).stat().st_size
    if size > MAX_MODEL_JSON_BYTES:
        raise _bad(source, f"is {size:,} bytes (a model.json is a few kB; limit {MAX_MODEL_JSON_BYTES:,})")
    try:
        meta = json.loads(Path(path).read_bytes())
    except (UnicodeDecodeError, ValueError) as err:
        raise _bad(source, f"is not valid JSON ({err})") from None
    return check_model_meta(meta, source=source)


def check_model_meta(meta: Any, *, source: str) -> dict[str, Any]:
    """Return `meta` if every value serving uses is present and in bounds, else raise
    ModelNotFoundError naming the field and the allowed range."""
    if not isinstance(meta, dict):
        raise _bad(source, "should hold a JSON object")
    classes = meta.get("classes")
    # Serving, like the gate, is binary: the positive class and one other.
    if (
        not isinstance(classes, list)
        or len(classes) != 2
        or not all(isinstance(c, str) and 0 < len(c) <= MAX_CLASS_NAME for c in classes)
        or len(set(classes)) != 2
        or POSITIVE not in classes
    ):
        raise _bad(source, f"field 'classes' must be a list of 2 distinct names including {POSITIVE!r}")
    if "num_classes" in meta and (not _is_int(meta["num_classes"]) or meta["num_classes"] != len(classes)):
        raise _bad(source, f"field 'num_classes' must equal the number of classes ({len(classes)})")
    prep = meta.get("preprocessing")
    if not isinstance(prep, dict):
        raise _bad(source, "lacks the 'preprocessing' object (pack_size, image_size, mean, std)")
    pack = prep.get("pack_size")
    if not _is_int(pack) or not MIN_SIZE <= pack <= MAX_PACK_SIZE:
        raise _bad(source, f"field 'preprocessing.pack_size' must be an integer {MIN_SIZE}-{MAX_PACK_SIZE}")
    crop = prep.get("image_size")
    if not _is_int(crop) or not MIN_SIZE <= crop <= pack:
        raise _bad(source, f"field 'preprocessing.image_size' must be an integer {MIN_SIZE}-pack_size ({pack})")
    for name, low in (("mean", -10.0), ("std", 1e-6)):
        if not _stat_ok(prep.get(name), low):
            raise _bad(source, f"field 'preprocessing.{name}' must be a number (or 1-3 numbers) between {low:g} and 10")
    return meta


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _stat_ok(value: Any, low: float) -> bool:
    values = value if isinstance(value, list) else [value]
    return 1 <= len(values) <= 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= 10 for v in values
    )


def _bad(source: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"{source} {why}; the model cannot be served safely — re-publish the run")
