"""The one decode path: file → greyscale uint8, aspect kept, padded to a square of `size`.

Packing, validation, predict and the app all go through `decode_xray`/`load_xray`, so what the
model sees at inference equals what it saw at evaluation. Inputs are untrusted (dataset files,
predict arguments, app uploads). The conversions and limits are in README ("Data checks",
"Security model", "Decisions worth knowing"); beyond them: only JPEG and PNG are opened because
TIFF (libtiff, dozens of codecs) and BMP add attack surface for no image we need; conversion
works in tiles into one 8-bit image, ~1 byte per pixel whatever the shape instead of the ~30 of
whole-row int64/float64 arrays.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from boneflow.errors import BoneflowError
from boneflow.settings import DataSettings

ImageFile.LOAD_TRUNCATED_IMAGES = False  # truncated files must fail, never be padded with grey
DEFAULT_MAX_PIXELS = 50_000_000  # ~7000x7000; real radiographs here are far below
DETAIL_SIDE = 256  # longest side of the decode that hashes and grouping see, whatever the pack size
DEFAULT_MAX_BYTES = DataSettings().max_bytes
# 50 MP x 4 bytes (RGBA / 32-bit) is 200 MB: every image under the pixel limit fits; the check
# matters when a caller raises max_pixels.
DEFAULT_MAX_DECODED_BYTES = 256 * 1024 * 1024
ALLOWED_FORMATS = ("JPEG", "PNG")
_JPEG_FORMATS = ("JPEG", "MPO")  # PIL's JPEG decoder reports multi-picture JPEGs as MPO
_STRIP_PIXELS = 1 << 18  # pixels per greyscale-conversion tile (a few MB of temporaries)
# Longest side over shortest side. Long-leg and full-spine stitches are ~1:4; a 20:1 image at
# the 50 MP limit is 31,623 px wide, whose PNG row buffers are a few hundred kB.
MAX_ASPECT = 20
_ORIENTATION_TAG = 0x0112  # EXIF Orientation
# EXIF orientation value -> the PIL transpose that turns the stored pixels upright
# (the table ImageOps.exif_transpose uses).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageRejected(BoneflowError):
    """An image that must be excluded; `.reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


REASONS = ("zero_byte", "too_large", "not_an_image", "truncated", "decompression_bomb", "too_small", "undecodable")


def _value_range(img: Image.Image) -> tuple[float, float]:
    """(lo, hi) for scaling to 0..255, found strip by strip: an integer image's is 0 and the
    smallest 2^k - 1 (k >= 8) at or above its maximum, so values are never clipped; a float one's is min-max."""
    lo, hi = float("inf"), float("-inf")
    for _, strip in _strips(img):
        arr = np.asarray(strip)
        if arr.size:
            lo, hi = min(lo, float(np.nanmin(arr))), max(hi, float(np.nanmax(arr)))
    if img.mode == "F":
        return lo, hi
    top = max(0, int(hi)) if hi != float("-inf") else 0  # negative 32-bit values carry no display meaning
    return 0.0, float((1 << max(8, top.bit_length())) - 1)


def _strip_to_grey(img: Image.Image, value_range: tuple[float, float] | None) -> Image.Image:
    """One strip of any PIL mode → 'L': palette expanded, alpha composited on black (transparent
    areas are background, not bone), colour to RGB then ITU-R 601 luma (R=G=B keeps its values)."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("L")
    if value_range is not None:  # I;16*, I, F
        lo, hi = value_range
        arr = np.asarray(img).astype(np.float64)
        if mode != "F":
            arr = np.clip(arr, 0, None)
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8), mode="L")
    if mode not in ("1", "RGB"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return img.convert("L")


def _strips(img: Image.Image):
    """((left, top), tile) pairs covering the image, at most _STRIP_PIXELS pixels each: whole
    rows when a row fits, else pieces of one row (an image may be millions of pixels wide)."""
    cols = min(img.width, _STRIP_PIXELS)
    rows = max(1, _STRIP_PIXELS // max(1, cols))
    for top in range(0, img.height, rows):
        bottom = min(img.height, top + rows)
        for left in range(0, img.width, cols):
            yield (left, top), img.crop((left, top, min(img.width, left + cols), bottom))


def _to_grey(img: Image.Image) -> Image.Image:
    """Any PIL mode → 'L', converted strip by strip into one 8-bit image (bounded memory)."""
    if img.mode == "L":
        return img
    value_range = _value_range(img) if img.mode.startswith(("I", "F")) else None
    grey = Image.new("L", img.size, 0)
    for corner, strip in _strips(img):
        grey.paste(_strip_to_grey(strip, value_range), corner)
    return grey


def read_bounded(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, refusing from its size alone (no read) when over `max_bytes`."""
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise ImageRejected("not_an_image", "not a regular file")
        if info.st_size > max_bytes:
            raise ImageRejected("too_large", f"{info.st_size:,} bytes is over the limit of {max_bytes:,}")
        data = fh.read(max_bytes + 1)  # the file may have grown since fstat
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"over {max_bytes:,} bytes (grew while being read)")
    return data


def _open(source: Path | bytes | Image.Image, max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
    if isinstance(source, Image.Image):
        if source.format is not None and source.format not in ALLOWED_FORMATS + _JPEG_FORMATS:
            raise ImageRejected("not_an_image", f"{source.format} is not one of {', '.join(ALLOWED_FORMATS)}")
        return source
    if isinstance(source, (bytes, bytearray)):
        if len(source) > max_bytes:
            raise ImageRejected("too_large", f"{len(source):,} bytes is over the limit of {max_bytes:,}")
        data = bytes(source)
    else:
        data = read_bounded(Path(source), max_bytes)
    if len(data) == 0:
        raise ImageRejected("zero_byte", "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # The allow-list: PIL tries only these decoders, so e.g. EPS never reaches Ghostscript.
            return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except Exception as exc:  # UnidentifiedImageError and friends: not a format we decode
        raise ImageRejected(
            "not_an_image", f"not a {' or '.join(ALLOWED_FORMATS)} image ({type(exc).__name__})"
        ) from exc


def _orientation(img: Image.Image) -> int:
    """The EXIF Orientation value (1-8) of a loaded image; 1 (upright) when absent or unreadable."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block must not make an otherwise good image unreadable
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def _check_shape(width: int, height: int, *, max_pixels: int, min_side: int) -> None:
    """Refuse a shape that is too small, or would cost too much memory to decode."""
    if width * height > max_pixels:
        raise ImageRejected(
            "decompression_bomb", f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels}"
        )
    if min(width, height) < min_side:
        raise ImageRejected("too_small", f"{width}x{height}: shorter side under {min_side} px")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        raise ImageRejected(
            "decompression_bomb",
            f"{width}x{height}: one side is over {MAX_ASPECT} times the other; no radiograph is shaped like that",
        )


def _check_decoded_bytes(width: int, height: int, mode: str, *, max_decoded_bytes: int) -> None:
    """Refuse an image whose decoded pixels would exceed the budget. PIL also keeps one 8-byte
    pointer per row: a 1 x 49,000,000 image costs 392 MB of them."""
    # Bytes PIL holds per decoded pixel: multi-band modes are stored as 32-bit pixels.
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    decoded_bytes = height * (width * per_pixel + 8)
    if decoded_bytes > max_decoded_bytes:
        raise ImageRejected(
            "decompression_bomb",
            f"{width}x{height} {mode} needs {decoded_bytes / 2**20:.0f} MiB "
            f"to decode, over the limit of {max_decoded_bytes / 2**20:.0f} MiB",
        )


def _load(img: Image.Image) -> None:
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


def decode_xray(
    source: Path | bytes | Image.Image,
    size: int,
    *,
    min_side: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> tuple[np.ndarray, Image.Image, dict]:
    """Decode once: (square uint8 [size, size], the unpadded greyscale image at DETAIL_SIDE for
    the perceptual hashes and the grouping thumbnail, info {width, height, mode, format,
    orientation}), all upright (EXIF orientation applied). Raises ImageRejected. The second image
    does not depend on `size` for packs up to DETAIL_SIDE, so duplicate groups, and the split, stay
    the same when only the image size changes (a champion packed at another size is re-scored on
    the same split)."""
    img = _open(source, max_bytes)
    width, height, mode = img.width, img.height, img.mode
    _check_shape(width, height, max_pixels=max_pixels, min_side=min_side)
    # Sizes in the stored orientation (the draft decode works on it); swapped when turned upright.
    scale = size / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    detail_scale = min(1.0, max(size, DETAIL_SIDE) / max(width, height))
    detail_target = (max(1, round(width * detail_scale)), max(1, round(height * detail_scale)))
    if img.format in _JPEG_FORMATS and img.mode in ("RGB", "L", "YCbCr"):
        img.draft("L", detail_target)  # reduced-size luma decode; still reads every entropy-coded byte
    _check_decoded_bytes(img.width, img.height, img.mode, max_decoded_bytes=max_decoded_bytes)  # after draft
    _load(img)
    orientation = _orientation(img)  # after load: a PNG may carry its eXIf chunk after the pixels
    try:
        grey = _to_grey(img)
    except Exception as exc:
        raise ImageRejected("undecodable", f"cannot convert mode {img.mode}: {exc}") from exc
    if orientation != 1:
        # Turned at full size (1 byte per pixel), before any resize: resampling works row pass
        # then column pass, so turning after it would differ from the upright twin in the last bit.
        grey = grey.transpose(_UPRIGHT[orientation])
        if orientation >= 5:  # the turns by 90 degrees swap the sides
            width, height = height, width
            target, detail_target = target[::-1], detail_target[::-1]
    detail = grey
    if max(grey.size) > max(detail_target):  # draft stops at a power-of-two scale above the target
        detail = grey.resize(detail_target, Image.Resampling.BILINEAR, reducing_gap=3.0)
    packed = detail if detail.size == target else detail.resize(target, Image.Resampling.BILINEAR, reducing_gap=3.0)
    info = {"width": width, "height": height, "mode": mode, "format": img.format, "orientation": orientation}
    square = Image.new("L", (size, size), 0)
    square.paste(packed, ((size - packed.width) // 2, (size - packed.height) // 2))
    return np.asarray(square, dtype=np.uint8), detail, info


def load_xray(source: Path | bytes | Image.Image, size: int) -> np.ndarray:
    """uint8 [size, size] greyscale, aspect kept, padded to square: the preprocessing of packing,
    evaluation, predict and the app. Raises ImageRejected for files validation would exclude
    (except the too-small rule, which only decides what enters the dataset)."""
    pixels, _, _ = decode_xray(source, size)
    return pixels
