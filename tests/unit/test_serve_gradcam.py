"""Grad-CAM: the cheap one-forward version equals the textbook full-backward computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boneflow.evaluate.gradcam import GradCAM, overlay_heatmap
from boneflow.train.model import build_model


def _reference_cam(model, x, class_index):
    """Textbook Grad-CAM: full backward through the whole network with a module backward hook."""
    kept = {}
    fwd = model.layer4.register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
    bwd = model.layer4.register_full_backward_hook(lambda m, gi, go: kept.__setitem__("g", go[0]))
    x = x.clone().requires_grad_(True)
    model.zero_grad()
    logits = model(x)
    logits[:, class_index].sum().backward()
    fwd.remove(), bwd.remove()
    weights = kept["g"].mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * kept["a"]).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return logits.detach(), (cam / cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]).detach()


@pytest.mark.parametrize("class_index", [0, 1])
def test_matches_full_backward_gradcam(class_index):
    torch.manual_seed(0)
    model = build_model().eval()
    x = torch.randn(2, 1, 96, 96)
    ref_logits, ref_cam = _reference_cam(model, x, class_index)
    logits, cam = GradCAM(model=model)(x, class_index=class_index)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert cam.shape == (2, 96, 96)
    assert torch.allclose(cam, ref_cam, atol=1e-5)
    assert cam.min() >= 0 and torch.allclose(cam.flatten(1).amax(1), torch.ones(2))


def test_leaves_the_model_as_it_found_it():
    model = build_model().eval()
    before = [p.requires_grad for p in model.parameters()]
    GradCAM(model=model)(torch.randn(1, 1, 64, 64), class_index=1)
    assert [p.requires_grad for p in model.parameters()] == before
    assert not model.layer4._forward_hooks
    assert all(p.grad is None for p in model.parameters()), "weights must not collect gradients"


def test_heat_follows_the_evidence():
    """A model whose 'fractured' score reads one image region: the map must peak there."""
    torch.manual_seed(0)
    model = build_model().eval()
    x = torch.zeros(1, 1, 128, 128)
    x[..., 80:112, 16:48] = 3.0  # bright patch in the lower left
    with torch.no_grad():
        a = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))
        # Let the fractured logit weigh the channels that fire most inside the patch's cells.
        patch = a[0, :, 2:4, 0:2].mean(dim=(1, 2)) - a[0].mean(dim=(1, 2))
        model.fc.weight[1] = patch
    _, cam = GradCAM(model=model)(x, class_index=1)
    peak = np.unravel_index(int(cam[0].argmax()), cam[0].shape)
    assert 64 <= peak[0] < 128 and 0 <= peak[1] < 64, peak


def test_overlay_keeps_cold_pixels_grey_and_colours_hot_ones():
    gray = np.full((8, 8), 100, np.uint8)
    cam = np.zeros((8, 8), np.float32)
    cam[0, 0] = 1.0
    out = overlay_heatmap(gray, cam)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out[4, 4] == 100).all()
    assert out[0, 0, 0] != out[0, 0, 2]  # coloured (jet's hot end is red)
    with pytest.raises(ValueError, match="differ in size"):
        overlay_heatmap(gray, cam[:4])
