"""Files an attacker (or a broken export) can put where an X-ray is expected: formats outside
the allow-list, huge files, small files that decode into huge images. Memory is measured in a
fresh interpreter (its own peak RSS, VmHWM), so nothing this test process holds is counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boneflow.intake.decode import ImageRejected, decode_xray, load_xray
from conftest_data import encode, gradient

REPO = Path(__file__).resolve().parents[2]
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nnewpath 0 0 moveto 64 64 lineto stroke showpage\n%%EOF\n"


def _python(code: str, env: dict | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_postscript_never_reaches_ghostscript(tmp_path):
    # A `gs` first on PATH that leaves a mark: PIL's EPS plugin would run it on load().
    bin_dir, mark = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    (bin_dir / "gs").chmod(0o755)
    eps = tmp_path / "xray.png"  # the extension does not matter: content decides
    eps.write_bytes(EPS)
    out = _python(
        "import json, sys\n"
        "from boneflow.intake.decode import ImageRejected, decode_xray\n"
        "reasons = []\n"
        f"for source in ({str(eps)!r}, open({str(eps)!r}, 'rb').read()):\n"
        "    try:\n"
        "        decode_xray(source if isinstance(source, bytes) else __import__('pathlib').Path(source), 64)\n"
        "        reasons.append('decoded')\n"
        "    except ImageRejected as exc:\n"
        "        reasons.append(exc.reason)\n"
        "print(json.dumps(reasons))\n",
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert json.loads(out) == ["not_an_image", "not_an_image"]
    assert not mark.exists(), "Ghostscript was started for a PostScript file"


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "GIF", "WEBP"])
def test_formats_outside_the_allow_list_are_not_images(fmt):
    data = encode(Image.fromarray(gradient(80, 80)), fmt)
    with pytest.raises(ImageRejected) as info:
        decode_xray(data, 64)
    assert info.value.reason == "not_an_image" and "JPEG or PNG" in info.value.detail


def test_a_pil_image_of_another_format_is_refused_too(tmp_path):
    path = tmp_path / "x.tif"
    Image.fromarray(gradient(80, 80)).save(path, "TIFF")
    with Image.open(path) as img, pytest.raises(ImageRejected):
        load_xray(img, 64)


def test_too_large_is_decided_from_the_size_before_reading(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(encode(Image.fromarray(gradient(80, 80)), "PNG"))
    with open(path, "r+b") as fh:  # sparse: a valid PNG followed by a hole
        fh.truncate(5 * 2**20)
    with pytest.raises(ImageRejected) as info:
        decode_xray(path, 64, max_bytes=4 * 2**20)
    assert info.value.reason == "too_large" and "5,242,880 bytes" in info.value.detail
    with pytest.raises(ImageRejected, match="too_large"):
        decode_xray(path.read_bytes(), 64, max_bytes=4 * 2**20)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    # opening a FIFO for reading blocks until a writer appears: give it one that never writes
    writer = subprocess.Popen([sys.executable, "-c", f"import time; f = open({str(fifo)!r}, 'wb'); time.sleep(5)"])
    try:
        with pytest.raises(ImageRejected, match="not a regular file"):
            decode_xray(fifo, 64)
    finally:
        writer.kill()
        writer.wait()


def _peak_rss_mb_of_load(path: Path) -> float:
    # VmHWM, not ru_maxrss: getrusage's maximum survives fork + exec, so a child of a large
    # pytest process would report the parent's size.
    return float(
        _python(
            "import re\n"
            "from boneflow.intake.decode import load_xray\n"
            f"load_xray({str(path)!r}, 256)\n"
            "status = open('/proc/self/status').read()\n"
            "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 1024)\n"
        )
    )


@pytest.mark.parametrize(
    "mode,fill,bound_mb",
    [
        # 40 MP at 2 bytes a pixel: 80 MB decoded + 40 MB greyscale + ~30 MB interpreter.
        # Whole-image int64/float64 conversion peaked at 1.33 GB.
        ("I;16", 1000, 250),
        # 4 bytes a pixel: 160 MB decoded + 40 MB greyscale. Whole-image compositing peaked at 0.68 GB.
        ("RGBA", (200, 100, 50, 128), 320),
    ],
)
def test_a_small_file_of_40_megapixels_decodes_in_bounded_memory(tmp_path, mode, fill, bound_mb):
    path = tmp_path / "big.png"
    Image.new(mode, (8000, 5000), fill).save(path)
    assert path.stat().st_size < 200_000  # ~90-170 KB on disk
    peak = _peak_rss_mb_of_load(path)
    assert peak < bound_mb, f"peak RSS {peak:.0f} MB decoding a 40 MP {mode} PNG"


def test_strip_conversion_equals_whole_image_conversion():
    # 16-bit, its maximum only in the last strip: every strip is scaled by the whole image's range
    wide = np.zeros((600, 500), np.uint16)
    wide[:10], wide[-10:] = 200, 4000
    got = load_xray(encode(Image.fromarray(wide), "PNG"), 600)
    assert got[-5:].max() == round(4000 * 255 / 4095) and got[:5].max() == round(200 * 255 / 4095)


def test_decoded_size_limit_counts_bytes_per_pixel():
    data = encode(Image.new("RGBA", (300, 300)), "PNG")  # 360 KB decoded
    with pytest.raises(ImageRejected) as info:
        decode_xray(data, 64, max_decoded_bytes=300_000)
    assert info.value.reason == "decompression_bomb" and "MiB to decode" in info.value.detail
    assert decode_xray(encode(Image.new("L", (300, 300)), "PNG"), 64, max_decoded_bytes=300_000)[0].shape == (64, 64)
