"""The decode memory bound holds for any shape: very wide and very tall 16-bit PNGs (tiny
files, huge rows) are refused from the header or converted in bounded tiles. Each decode runs
in its own process under GNU time (`/usr/bin/time -v`), whose peak RSS must stay under 1 GB."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

TIME = shutil.which("time", path="/usr/bin")
pytestmark = pytest.mark.skipif(TIME is None, reason="needs GNU time at /usr/bin/time (apt-get install time)")
PEAK_LIMIT_KB = 1_000_000  # 1 GB


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_grey16_png(path: Path, width: int, height: int) -> Path:
    """A 16-bit greyscale PNG of a horizontal ramp, streamed row by row (the test process never
    holds the image): a 49,000,000 x 1 one is a few hundred kB."""
    ramp = bytes(range(256)) * 2
    pack = zlib.compressobj(9)
    body = []
    if width * 2 < 1 << 20:  # short rows: compress many identical rows per call
        row = b"\x00" + (ramp * (width * 2 // len(ramp) + 1))[: width * 2]  # filter type 0
        per_call = max(1, (1 << 20) // len(row))
        for first in range(0, height, per_call):
            body.append(pack.compress(row * min(per_call, height - first)))
    else:
        for _ in range(height):
            body.append(pack.compress(b"\x00"))
            left = width * 2
            while left:
                piece = min(left, 1 << 20)
                body.append(pack.compress((ramp * (piece // len(ramp) + 1))[:piece]))
                left -= piece
    body.append(pack.flush())
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(body)) + _chunk(b"IEND", b"")
    )
    return path


DECODE = """
import json, sys
import boneflow.intake.decode as pre
if sys.argv[2] != "default":
    pre.MAX_ASPECT = int(sys.argv[2])  # a caller that allows any shape: the tiles alone bound memory
try:
    pixels = pre.load_xray(sys.argv[1], 256)
    print(json.dumps({"shape": list(pixels.shape), "max": int(pixels.max())}))
except pre.ImageRejected as err:
    print(json.dumps({"rejected": err.reason, "detail": err.detail}))
"""


def decode_measured(path: Path, max_aspect: str = "default") -> tuple[dict, int]:
    """(what load_xray answered, peak RSS in kB) from a fresh process under /usr/bin/time -v."""
    done = subprocess.run(
        [TIME, "-v", sys.executable, "-c", DECODE, str(path), max_aspect],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return json.loads(done.stdout.strip().splitlines()[-1]), peak


@pytest.mark.parametrize("width,height", [(49_000_000, 1), (1, 49_000_000)])
def test_extreme_aspect_ratios_are_refused_from_the_header(tmp_path, width, height):
    path = write_grey16_png(tmp_path / "strip.png", width, height)
    assert path.stat().st_size < 1_000_000
    answer, peak = decode_measured(path)
    assert answer["rejected"] == "decompression_bomb" and "over 20 times the other" in answer["detail"]
    assert peak < PEAK_LIMIT_KB, peak


def test_tiles_bound_memory_even_when_any_shape_is_allowed(tmp_path):
    path = write_grey16_png(tmp_path / "strip.png", 49_000_000, 1)
    answer, peak = decode_measured(path, max_aspect=str(10**9))
    assert answer["shape"] == [256, 256]
    assert peak < PEAK_LIMIT_KB, peak


def test_row_pointers_count_in_the_decoded_size(tmp_path):
    # 49,000,000 rows of 2 bytes: 98 MB of pixels, 392 MB of PIL's row pointers.
    path = write_grey16_png(tmp_path / "strip.png", 1, 49_000_000)
    answer, peak = decode_measured(path, max_aspect=str(10**9))
    assert answer["rejected"] == "decompression_bomb" and "467 MiB to decode" in answer["detail"]
    assert peak < PEAK_LIMIT_KB, peak


@pytest.mark.parametrize("width,height", [(31_000, 1_600), (1_600, 31_000)])
def test_wide_and_tall_images_within_the_ratio_decode_in_bounded_memory(tmp_path, width, height):
    path = write_grey16_png(tmp_path / "wide.png", width, height)  # 49.6 MP, 19.4:1
    answer, peak = decode_measured(path)
    assert answer["shape"] == [256, 256] and answer["max"] > 0
    assert peak < PEAK_LIMIT_KB, peak


def test_the_ratio_limit_and_one_above_it(tmp_path):
    from PIL import Image

    from boneflow.intake.decode import MAX_ASPECT, ImageRejected, load_xray

    Image.new("L", (MAX_ASPECT * 10, 10), 200).save(tmp_path / "at.png")
    Image.new("L", (MAX_ASPECT * 10 + 1, 10), 200).save(tmp_path / "over.png")
    assert load_xray(tmp_path / "at.png", 64).max() == 200
    with pytest.raises(ImageRejected, match="over 20 times"):
        load_xray(tmp_path / "over.png", 64)
