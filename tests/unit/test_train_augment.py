"""Batch presets: shapes, dtypes, ranges, determinism, and eval == inference preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from boneflow.train.augment import GREY_MEAN, GREY_STD, EvalPreset, TrainPreset


@pytest.fixture
def batch():
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8))


def _value_range():
    return (0 - GREY_MEAN) / GREY_STD, (1 - GREY_MEAN) / GREY_STD


def test_train_preset_shape_dtype_range(batch):
    out = TrainPreset(crop_size=40)(batch, torch.Generator().manual_seed(1))
    low, high = _value_range()
    assert out.shape == (6, 1, 40, 40) and out.dtype == torch.float32
    assert out.min() >= low - 1e-5 and out.max() <= high + 1e-5


def test_train_preset_is_seeded_and_random(batch):
    preset = TrainPreset(crop_size=40)
    first = preset(batch, torch.Generator().manual_seed(7))
    again = preset(batch, torch.Generator().manual_seed(7))
    other = preset(batch, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def _without_jitter(hflip_prob: float) -> TrainPreset:
    """A preset whose crop is the whole image: no rotation, aspect change or jitter."""
    preset = TrainPreset(crop_size=32, scale=(1, 1), degrees=0)
    preset.ratio, preset.brightness, preset.contrast, preset.hflip_prob = (1, 1), 0, 0, hflip_prob
    return preset


def test_identity_settings_reduce_to_a_resize():
    # scale 1, no rotation/flip/jitter: the affine resample of a constant image is that constant.
    flat = torch.full((2, 48, 48), 128, dtype=torch.uint8)
    out = _without_jitter(hflip_prob=0)(flat, torch.Generator().manual_seed(0))
    assert torch.allclose(out, torch.full_like(out, (128 / 255 - GREY_MEAN) / GREY_STD), atol=1e-5)


def test_flip_mirrors_the_image():
    ramp = torch.arange(32, dtype=torch.uint8).repeat(32, 1).unsqueeze(0) * 8  # brighter to the right
    kept = _without_jitter(hflip_prob=0)(ramp, torch.Generator().manual_seed(0))
    flipped = _without_jitter(hflip_prob=1)(ramp, torch.Generator().manual_seed(0))
    assert torch.allclose(flipped, kept.flip(-1), atol=1e-4)
    assert kept[0, 0, 0, -1] > kept[0, 0, 0, 0]


def test_eval_preset_is_an_exact_center_crop(batch):
    out = EvalPreset(crop_size=40)(batch)
    expected = (batch[:, 4:44, 4:44].float() / 255 - GREY_MEAN) / GREY_STD
    assert out.shape == (6, 1, 40, 40)
    assert torch.equal(out[:, 0], expected)
    assert torch.equal(out, EvalPreset(crop_size=40)(batch.numpy()))  # numpy in, same result


def test_eval_preset_refuses_images_smaller_than_the_crop(batch):
    with pytest.raises(ValueError, match="crop_size"):
        EvalPreset(crop_size=64)(batch)


def test_inference_preprocessing_equals_evaluation(tmp_path):
    """The image a user uploads goes load_xray → EvalPreset, the same as the packed test split."""
    from PIL import Image

    from boneflow.evaluate.predict import predict_proba
    from boneflow.intake import decode as preprocess
    from boneflow.train.model import build_model

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (90, 70), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    path = tmp_path / "x.png"
    path.write_bytes(buffer.getvalue())
    packed_pixels = preprocess.load_xray(path, 73)  # what packing stores
    uploaded_pixels = preprocess.load_xray(buffer.getvalue(), 73)  # what predict/app decode
    assert np.array_equal(packed_pixels, uploaded_pixels)
    model = build_model().eval()
    torch.manual_seed(0)
    batch_probs = predict_proba(model, np.stack([packed_pixels, packed_pixels]), image_size=64)
    single_prob = predict_proba(model, uploaded_pixels, image_size=64)
    assert single_prob.shape == (1,)
    assert abs(batch_probs[0] - single_prob[0]) < 1e-6


def test_fast_grid_equals_affine_grid():
    from boneflow.train.augment import _affine_grid

    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.affine_grid(theta, [5, 1, 37, 37], align_corners=False)
    assert torch.allclose(_affine_grid(theta.view(5, 6), 37), expected, atol=1e-6)


def test_train_preset_outputs_do_not_share_scratch_memory(batch):
    # Work buffers are reused between calls; the returned batches must stay independent,
    # including when the batch size changes (the last batch of an epoch).
    preset = TrainPreset(crop_size=40)
    first = preset(batch, torch.Generator().manual_seed(1))
    kept = first.clone()
    second = preset(batch[:3], torch.Generator().manual_seed(2))
    assert torch.equal(first, kept) and second.shape == (3, 1, 40, 40)
    assert torch.equal(preset(batch, torch.Generator().manual_seed(1)), kept)


def test_cpu_blocks_give_the_same_numbers_as_one_call(batch, monkeypatch):
    import boneflow.train.augment as augment

    preset = TrainPreset(crop_size=40)
    whole = preset(batch, torch.Generator().manual_seed(5))
    monkeypatch.setattr(augment, "_CPU_BLOCK_BYTES", 1)  # one image per block
    blocked = preset(batch, torch.Generator().manual_seed(5))
    assert torch.equal(whole, blocked)
