"""EXIF orientation is applied in the one decode path: an image stored turned with an
Orientation tag (as phones and PACS exports write it) and its upright twin give the same pixels
to packing, evaluation, predict and the app's Grad-CAM."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from boneflow.intake.decode import decode_xray, load_xray

# For each EXIF orientation: how to store an upright picture so that a viewer which honours the
# tag shows it upright again (the inverse of the turn the tag asks for).
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_xray() -> Image.Image:
    """Asymmetric in both directions (a bright block top-left, a ramp), 120 wide x 80 high."""
    rng = np.random.default_rng(1)
    pixels = (np.linspace(0, 120, 120)[None, :] + np.linspace(0, 60, 80)[:, None]).astype(np.uint8)
    pixels[5:30, 8:40] = 250
    pixels += rng.integers(0, 20, pixels.shape, dtype=np.uint8)
    return Image.fromarray(pixels, mode="L")


def tagged_twin(upright: Image.Image, orientation: int, path, **save) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(STORED_AS[orientation]).save(path, exif=exif, **save)


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_a_tagged_png_decodes_like_its_upright_twin(tmp_path, orientation):
    upright = upright_xray()
    upright.save(tmp_path / "upright.png")
    tagged_twin(upright, orientation, tmp_path / "tagged.png")
    assert not np.array_equal(load_xray(tmp_path / "tagged.png", 64)[8:, :], np.zeros((56, 64)))
    np.testing.assert_array_equal(load_xray(tmp_path / "tagged.png", 64), load_xray(tmp_path / "upright.png", 64))
    _, detail, info = decode_xray(tmp_path / "tagged.png", 64)
    assert (info["width"], info["height"], info["orientation"]) == (120, 80, orientation)
    assert detail.size == (120, 80)  # the hashes and grouping see the upright picture too


def test_a_tagged_jpeg_is_turned_too(tmp_path):
    upright = upright_xray()
    upright.save(tmp_path / "upright.jpg", quality=95)
    tagged_twin(upright, 6, tmp_path / "tagged.jpg", quality=95)
    diff = np.abs(load_xray(tmp_path / "tagged.jpg", 64).astype(int) - load_xray(tmp_path / "upright.jpg", 64))
    assert diff.mean() < 3  # JPEG blocks differ a little; a 90 degree turn would differ by tens


def test_a_damaged_or_odd_orientation_value_is_ignored(tmp_path):
    upright = upright_xray()
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 9  # not an orientation
    upright.save(tmp_path / "odd.png", exif=exif)
    np.testing.assert_array_equal(load_xray(tmp_path / "odd.png", 64), load_xray(tmp_path / "upright.png", 64))


def test_predict_and_the_apps_gradcam_give_the_twins_one_answer(tmp_path, monkeypatch):
    from boneflow.demo.store import write_demo_store
    from boneflow.serve.predictor import Predictor

    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    write_demo_store(str(tmp_path / "store"), image_size=48, seed=0)
    predictor = Predictor.from_store(str(tmp_path / "store"))
    upright = upright_xray()
    upright.save(tmp_path / "upright.png")
    tagged_twin(upright, 8, tmp_path / "tagged.png")
    assert predictor.predict(tmp_path / "tagged.png") == predictor.predict(tmp_path / "upright.png")
    seen_tagged, seen_upright = predictor.explain(tmp_path / "tagged.png"), predictor.explain(tmp_path / "upright.png")
    np.testing.assert_array_equal(seen_tagged.image, seen_upright.image)  # the overlay lines up with the browser
    np.testing.assert_allclose(seen_tagged.heatmap, seen_upright.heatmap, atol=1e-6)
