"""Grad-CAM on a ResNet's last stage (our own, no extra package): a forward hook on `layer4`
keeps its activation map A [B,K,h,w], a hook on that tensor catches dScore/dA on the backward
pass; the map is ReLU(sum_k mean_ij(dScore/dA_k) * A_k), upsampled to the input and scaled to 0..1.

The forward hook hands back a *detached* copy of layer4's output that requires grad: dScore/dA
needs nothing before layer4, so the backward pass only goes through avgpool + fc, the stem and
the four stages run without recording a graph, and prediction + Grad-CAM cost one forward pass.
"""

from __future__ import annotations

from functools import cache
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GradCAM:
    """Callable: `GradCAM(model=m)(x, class_index=1) -> (logits [B,C], cam [B,H,W] in 0..1)`;
    `model` is a torchvision ResNet in eval mode."""

    def __init__(self, *, model: nn.Module) -> None:
        self.model = model
        self.layer = cast(nn.Module, model.layer4)
        self._activation: torch.Tensor | None = None
        self._gradient: torch.Tensor | None = None

    def _keep_activation(self, _module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
        start = output.detach().requires_grad_(True)
        start.register_hook(self._keep_gradient)
        self._activation = start
        return start  # the rest of the network continues from this leaf

    def _keep_gradient(self, grad: torch.Tensor) -> None:
        self._gradient = grad

    def __call__(self, x: torch.Tensor, *, class_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        frozen = [p for p in self.model.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        handle = self.layer.register_forward_hook(self._keep_activation)
        try:
            with torch.enable_grad():
                logits = self.model(x)
                logits[:, class_index].sum().backward()
        finally:
            handle.remove()
            for p in frozen:
                p.requires_grad_(True)
        activation, gradient = self._activation, self._gradient
        self._activation = self._gradient = None
        if activation is None or gradient is None:
            raise RuntimeError("Grad-CAM: the hooked layer did not run; is `layer` part of `model`?")
        activation, gradient = activation.float(), gradient.float()  # bf16 under autocast
        weights = gradient.mean(dim=(2, 3), keepdim=True)  # [B,K,1,1]: importance of each channel
        cam = F.relu((weights * activation).sum(dim=1, keepdim=True))  # [B,1,h,w]
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
        return logits.detach(), (cam / peak).detach()


@cache
def _jet_lut() -> np.ndarray:
    """256x3 uint8 colour table (blue = cold, red = hot); matplotlib is already a dependency."""
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def overlay_heatmap(gray: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """Blend a 0..1 heat map [H,W] over a uint8 greyscale image [H,W] → RGB uint8 [H,W,3]."""
    if gray.shape != cam.shape:
        raise ValueError(f"overlay_heatmap: image {gray.shape} and heat map {cam.shape} differ in size")
    heat = _jet_lut()[np.clip(cam * 255, 0, 255).astype(np.uint8)].astype(np.float32)
    base = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    # Weight the colour by the heat itself so cold regions keep the X-ray readable.
    weight = alpha * np.clip(cam, 0, 1)[..., None]
    return (base * (1 - weight) + heat * weight).round().astype(np.uint8)
