"""The fold ensemble's fused inference network (train/fused_members.py) computes what its
members compute: exactly in fp32, within bf16 rounding in bf16 inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boneflow.evaluate.calibration import sigmoid
from boneflow.train.ensemble import FoldEnsemble
from boneflow.train.fused_members import FusedMembers
from boneflow.train.model import build_model


def _members(k: int) -> list[torch.nn.Module]:
    """Random members whose BatchNorms hold non-trivial statistics (folding them is under test)."""
    torch.manual_seed(0)
    members = []
    for _ in range(k):
        model = build_model(num_classes=2)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.normal_(0, 0.2)
        members.append(model.eval())
    return members


@pytest.mark.parametrize("k", [1, 3])
def test_fused_fp32_equals_each_member(k):
    members = _members(k)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = torch.stack([m(x) for m in members], dim=1)
        got = FusedMembers(members)(x)
    assert got.shape == (2, k, 2)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_bf16_inference_takes_the_fused_path_and_keeps_the_members_mean():
    members = _members(3)
    ensemble = FoldEnsemble(members, temperature=1.5).eval()
    x = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        exact = ensemble(x)  # no autocast: the members one after another
        margins = np.stack([(m(x)[:, 1] - m(x)[:, 0]).numpy() for m in members]).astype(np.float64)
    assert "_fused_members" not in ensemble.__dict__
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = ensemble(x)
    assert "_fused_members" in ensemble.__dict__  # built once, kept out of the state dict
    assert not any(key.startswith("_fused") for key in ensemble.state_dict())
    mean = sigmoid(margins / 1.5).mean(axis=0)
    fast_p = sigmoid((fast[:, 1] - fast[:, 0]).float().numpy().astype(np.float64) / 1.5)
    exact_p = sigmoid((exact[:, 1] - exact[:, 0]).numpy().astype(np.float64) / 1.5)
    assert exact_p == pytest.approx(mean, abs=1e-5)
    assert fast_p == pytest.approx(mean, abs=0.02)  # bf16 rounding of weights and activations


def test_with_gradients_the_members_run_as_they_are():
    members = _members(2)
    ensemble = FoldEnsemble(members).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ensemble(torch.randn(1, 1, 32, 32, requires_grad=True))
    assert "_fused_members" not in ensemble.__dict__
