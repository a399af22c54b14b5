"""Checks on an uploaded file before it is decoded: size in bytes, size in pixels, is it an image.
The pixel count comes from the header (PIL opens lazily): a decompression bomb is refused unread."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from boneflow.serve.errors import ImageRejectedError


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 25 * 1024 * 1024  # 25 MiB: a large DICOM-exported PNG fits, a video does not
    max_pixels: int = 40_000_000  # ~6300 x 6300; real radiographs are well below


def check_upload(path: Path, limits: UploadLimits) -> None:
    """Raise ImageRejectedError saying what is wrong and what to do, if anything is."""
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name
    try:
        size = Path(path).stat().st_size
    except OSError as err:
        raise ImageRejectedError(f"{name}: cannot read the file ({err.strerror}); upload it again") from None
    if size == 0:
        raise ImageRejectedError(f"{name}: the file is empty; upload a PNG or JPEG X-ray")
    if size > limits.max_bytes:
        raise ImageRejectedError(
            f"{name}: {size / 2**20:.1f} MiB is larger than the {limits.max_bytes / 2**20:.0f} MiB limit; "
            f"export a smaller PNG or JPEG"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejectedError(
            f"{name}: too many pixels to decode safely; resize it below {limits.max_pixels:,} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageRejectedError(f"{name}: not an image this app can read; upload a PNG or JPEG X-ray") from None
    if width * height > limits.max_pixels:
        raise ImageRejectedError(
            f"{name}: {width}x{height} is {width * height:,} pixels, above the {limits.max_pixels:,} "
            f"pixel limit; resize it (the model sees ~256 px anyway)"
        )
