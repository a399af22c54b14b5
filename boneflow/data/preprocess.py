"""The one decode path: file → greyscale uint8, aspect kept, padded to a square of `size`.

Packing, validation, predict and the app all go through `decode_xray`/`load_xray`, so what the
model sees at inference equals what it saw at evaluation.

Conversions (documented choices):
- JPEG: `Image.draft("L", ...)` asks libjpeg for the luma plane at the smallest 1/2, 1/4, 1/8
  scale that still covers the target size. libjpeg still reads all entropy-coded data, so a
  truncated file still fails (tested).
- RGB / YCbCr / CMYK / LAB / HSV: converted to RGB by PIL, then ITU-R 601 luma. RGB-stored
  greyscale (R=G=B) therefore keeps its values.
- Alpha (RGBA, LA, PA, palette with transparency): composited on BLACK. Radiographs are bright
  structures on a dark background, so transparent areas are background, not bone.
- Palette: expanded through the palette, then luma.
- 16-bit / 32-bit integer greyscale: scaled by the image's actual bit range (the smallest
  2^k - 1 >= its maximum, k >= 8), so a 12-bit scan stored in 16 bits spans 0..255 at its 4095
  and values are never clipped at 255. Float images: min-max scaled.
- Pad to square with black (centred), after resizing the longer side to `size`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from boneflow.errors import BoneflowError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # truncated files must fail, never be padded with grey
DEFAULT_MAX_PIXELS = 50_000_000  # ~7000x7000; real radiographs here are far below


class ImageRejected(BoneflowError):
    """An image that must be excluded; `.reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


REASONS = ("zero_byte", "not_an_image", "truncated", "decompression_bomb", "too_small", "undecodable")


def _to_grey(img: Image.Image) -> Image.Image:
    """Any PIL mode → 'L' following the conversions in the module docstring."""
    mode = img.mode
    if mode == "L":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("L")
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img)
        if mode == "F":
            arr = arr.astype(np.float64)
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        else:
            arr = arr.astype(np.int64)
            arr = np.clip(arr, 0, None)  # negative 32-bit values carry no display meaning
            top = int(arr.max()) if arr.size else 0
            bits = max(8, top.bit_length())
            scaled = arr * (255.0 / ((1 << bits) - 1))
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    if mode == "1":
        return img.convert("L")
    if mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return img.convert("L")


def _open(source: Path | bytes | Image.Image) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(data) == 0:
        raise ImageRejected("zero_byte", "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except Exception as exc:  # UnidentifiedImageError and friends: not a format PIL knows
        raise ImageRejected("not_an_image", f"not a readable image format ({type(exc).__name__})") from exc


def decode_xray(source: Path | bytes | Image.Image, size: int, *, min_side: int = 1,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, Image.Image, dict]:
    """Decode once and return (square uint8 [size, size], the resized unpadded greyscale image
    (input of the perceptual hashes), info {width, height, mode, format}). Raises ImageRejected."""
    img = _open(source)
    width, height = img.size
    info = {"width": width, "height": height, "mode": img.mode, "format": img.format}
    if width * height > max_pixels:
        raise ImageRejected("decompression_bomb", f"{width}x{height} = {width * height} pixels is over "
                                                  f"the limit of {max_pixels}")
    if min(width, height) < min_side:
        raise ImageRejected("too_small", f"{width}x{height}: shorter side under {min_side} px")
    scale = size / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if img.format == "JPEG" and img.mode in ("RGB", "L", "YCbCr"):
        img.draft("L", target)  # reduced-size luma decode; still reads every entropy-coded byte
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except Exception as exc:
        text = str(exc)
        reason = "truncated" if "truncated" in text.lower() or isinstance(exc, EOFError) else "undecodable"
        raise ImageRejected(reason, f"{type(exc).__name__}: {text}") from exc
    try:
        grey = _to_grey(img)
    except Exception as exc:
        raise ImageRejected("undecodable", f"cannot convert mode {img.mode}: {exc}") from exc
    if grey.size != target:
        grey = grey.resize(target, Image.Resampling.BILINEAR, reducing_gap=3.0)
    square = Image.new("L", (size, size), 0)
    square.paste(grey, ((size - target[0]) // 2, (size - target[1]) // 2))
    return np.asarray(square, dtype=np.uint8), grey, info


def load_xray(source: Path | bytes | Image.Image, size: int) -> np.ndarray:
    """uint8 [size, size] greyscale, aspect kept, padded to square: the preprocessing of packing,
    evaluation, predict and the app. Raises ImageRejected for files validation would exclude
    (except the too-small rule, which only decides what enters the dataset)."""
    pixels, _, _ = decode_xray(source, size)
    return pixels
