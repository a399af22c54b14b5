"""Model construction, pretrained-weight handling and safe (de)serialisation."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torchvision.models import resnet18

from boneflow.errors import BoneflowError
from boneflow.train import model as model_module
from boneflow.train.model import build_model, load_model, save_model


def test_model_takes_one_channel_and_gives_two_logits():
    model = build_model().eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 40, 40)).shape == (3, 2)


def test_missing_pretrained_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    # Nothing listens on port 9 (discard) here: the download fails as it does offline.
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, f"http://127.0.0.1:9/{model_module.HUB_WEIGHTS_NAME}")
    with pytest.raises(BoneflowError) as caught:
        build_model(pretrained=True)
    message = str(caught.value)
    assert "--no-pretrained" in message and "resnet18-f37072fd.pth" in message and str(tmp_path) in message


def _hashed_weights(tmp_path):
    """A torchvision-format resnet18 state dict saved under a name carrying its own sha256 prefix."""
    torch.manual_seed(3)
    state = resnet18(num_classes=1000).state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    named = tmp_path / f"resnet18-{digest}.pth"
    raw.rename(named)
    return named, state


def test_pretrained_conv1_is_rgb_sum_and_head_is_new(tmp_path):
    path, state = _hashed_weights(tmp_path)
    model = build_model(pretrained=True, weights_path=path)
    assert torch.equal(model.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert model.fc.weight.shape == (2, 512)


def test_hub_cache_is_used_and_hash_is_checked(tmp_path, monkeypatch):
    path, _ = _hashed_weights(tmp_path)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    # Right name, wrong content: the sha256 prefix check must refuse it.
    (cache / model_module.HUB_WEIGHTS_NAME).write_bytes(path.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(BoneflowError, match="sha256"):
        build_model(pretrained=True)


def test_safetensors_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model().to(memory_format=torch.channels_last).eval()
    meta = {
        "classes": ["not fractured", "fractured"],
        "preprocessing": {"pack_size": 73, "image_size": 64},
        "config": {"epochs": 3},
    }
    weights, info = save_model(model, tmp_path / "out", meta=meta)
    assert weights.name == "model.safetensors" and info.name == "model.json"
    loaded, loaded_meta = load_model(weights, info)
    assert loaded_meta["classes"] == meta["classes"] and loaded_meta["config"] == {"epochs": 3}
    assert loaded_meta["architecture"] == model_module.ARCHITECTURE
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    # Same memory format on both sides: channels_last and NCHW kernels round differently.
    loaded = loaded.to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not loaded.training
