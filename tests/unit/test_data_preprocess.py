"""The one decode path: exclusion reasons and odd-but-valid encodings, checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from boneflow.intake.decode import ImageRejected, decode_xray, load_xray
from conftest_data import encode, gradient


def reason_of(data: bytes, **kw) -> str:
    with pytest.raises(ImageRejected) as info:
        decode_xray(data, 64, **kw)
    return info.value.reason


def test_zero_byte():
    assert reason_of(b"") == "zero_byte"


def test_not_an_image():
    assert reason_of(b"<html>403 Forbidden</html>") == "not_an_image"


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_jpeg_detected_even_with_reduced_size_draft(keep):
    # 800 px decoded to 64 px: draft picks a 1/8 scale, yet truncation must still be seen.
    data = encode(Image.fromarray(gradient(800, 600)).convert("RGB"), "JPEG", quality=90)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert reason_of(data[: int(len(data) * keep)]) == "truncated"
    assert reason_of(data[:-2]) == "truncated"  # only the end-of-image marker missing


def test_draft_really_reduces_the_decode():
    data = encode(Image.fromarray(gradient(1600, 1200)), "JPEG", quality=90)
    pixels, grey, info = decode_xray(data, 64)
    assert info["width"] == 1600 and grey.size == (256, 192)  # the DETAIL_SIDE decode, not 1600
    assert pixels.shape == (64, 64)


def test_the_detail_image_does_not_depend_on_the_pack_size():
    """Hashes and duplicate groups come from it: packing at another size must not move a split."""
    for width in (180, 800, 1600):
        data = encode(Image.fromarray(gradient(width, width * 3 // 4)), "JPEG", quality=90)
        details = [np.asarray(decode_xray(data, size)[1]) for size in (37, 73, 128, 256)]
        assert all(np.array_equal(details[0], d) for d in details[1:]), width


def test_truncated_png():
    data = encode(Image.fromarray(gradient(300, 200)), "PNG")
    assert reason_of(data[: len(data) // 2]) == "truncated"


def test_undecodable_png_stream():
    data = bytearray(encode(Image.fromarray(gradient(120, 100)), "PNG"))
    at = data.find(b"IDAT")
    data[at + 4 : at + 6] = b"\xff\xff"
    assert reason_of(bytes(data)) == "undecodable"


def test_too_small_uses_the_shorter_side():
    data = encode(Image.fromarray(gradient(200, 63)), "PNG")
    assert reason_of(data, min_side=64) == "too_small"
    assert decode_xray(encode(Image.fromarray(gradient(200, 64)), "PNG"), 64, min_side=64)[0].shape == (64, 64)


def test_decompression_bomb_over_pixel_limit():
    data = encode(Image.new("L", (400, 300)), "PNG")
    assert reason_of(data, max_pixels=100_000) == "decompression_bomb"
    assert decode_xray(data, 64, max_pixels=120_000)[0].shape == (64, 64)


def _square(mode_img: Image.Image, fmt: str = "PNG", **kw) -> np.ndarray:
    return load_xray(encode(mode_img, fmt, **kw), 64)


def test_sixteen_bit_is_scaled_by_its_bit_range_not_clipped():
    base = gradient(64, 64).astype(np.uint16)
    wide = base * 16  # a 12-bit scan stored in 16 bits: max 4000 < 4096
    got = _square(Image.fromarray(wide))
    expected = np.rint(wide * (255 / 4095)).astype(np.uint8)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert got.max() >= 240 and np.unique(got).size > 20  # not a clipped, all-255 image
    full = _square(Image.fromarray((base * 257).astype(np.uint16)))  # full 16-bit range
    assert np.abs(full.astype(int) - base.astype(int)).max() <= 1


def test_rgb_stored_greyscale_keeps_values():
    base = gradient(64, 64)
    got = _square(Image.fromarray(base).convert("RGB"))
    assert np.abs(got.astype(int) - base.astype(int)).max() <= 1


def test_palette_is_expanded():
    base = gradient(64, 64)
    pal = Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    got = _square(pal)
    assert np.abs(got.astype(int) - base.astype(int)).mean() < 2


def test_rgba_is_composited_on_black():
    base = gradient(64, 64)
    rgba = Image.fromarray(base).convert("RGBA")
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, :16] = 0
    rgba.putalpha(Image.fromarray(alpha))
    got = _square(rgba)
    assert got[:, :16].max() == 0  # transparent → black background
    assert np.abs(got[:, 16:].astype(int) - base[:, 16:].astype(int)).max() <= 1


def test_cmyk_jpeg_converts_to_the_right_brightness():
    base = np.full((64, 64), 30, np.uint8)
    base[16:48, 16:48] = 220
    got = _square(Image.fromarray(base).convert("RGB").convert("CMYK"), "JPEG", quality=95)
    assert abs(int(got[32, 32]) - 220) <= 8 and abs(int(got[2, 2]) - 30) <= 8


def test_aspect_kept_and_padded_to_square_with_black():
    img = np.full((50, 100), 200, np.uint8)  # 2:1 landscape
    got = load_xray(encode(Image.fromarray(img), "PNG"), 64)
    assert got.shape == (64, 64) and got.dtype == np.uint8
    rows = np.nonzero(got.max(axis=1) > 100)[0]
    assert (rows.min(), rows.max()) == (16, 47)  # 32 rows of image, centred
    assert got[:16].max() == 0 and got[48:].max() == 0


def test_load_xray_accepts_path_bytes_and_pil(tmp_path):
    img = Image.fromarray(gradient(90, 70))
    path = tmp_path / "x.png"
    img.save(path)
    a, b, c = load_xray(path, 32), load_xray(path.read_bytes(), 32), load_xray(img, 32)
    assert np.array_equal(a, b) and np.array_equal(a, c)
