"""k ResNet18s of one shape as one wide network, for inference: what makes a fold ensemble cost
less than k separate forward passes on CPU (README, "Performance", note "Fold ensemble": why the
weights are stored in bf16).

Every convolution of the k members becomes one grouped convolution (member j's channels are
group j; the stem reads the one shared input channel, so the input is not copied k times), each
eval BatchNorm is folded into the convolution before it, and the heads become one batched matrix
product. Output: each member's logits, [B, k, classes].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _fold(convs: list[Any], norms: list[Any], *, shared_input: bool = False) -> nn.Conv2d:
    """One convolution computing every member's conv + BatchNorm (eval statistics)."""
    first, k = convs[0], len(convs)
    weights, biases = [], []
    for conv, norm in zip(convs, norms, strict=True):
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        weights.append(conv.weight * scale[:, None, None, None])
        biases.append(norm.bias - norm.running_mean * scale)
    fused = nn.Conv2d(
        first.in_channels * (1 if shared_input else k),
        first.out_channels * k,
        first.kernel_size,
        first.stride,
        first.padding,
        groups=1 if shared_input else k,
        bias=True,
    )
    fused.weight.data.copy_(torch.cat(weights))
    fused.bias.data.copy_(torch.cat(biases))  # type: ignore[union-attr]
    return fused


class _Block(nn.Module):
    """torchvision's BasicBlock, k at once."""

    def __init__(self, blocks: list[Any]) -> None:
        super().__init__()
        self.conv1 = _fold([b.conv1 for b in blocks], [b.bn1 for b in blocks])
        self.conv2 = _fold([b.conv2 for b in blocks], [b.bn2 for b in blocks])
        self.downsample: nn.Conv2d | None = None
        if blocks[0].downsample is not None:
            self.downsample = _fold([b.downsample[0] for b in blocks], [b.downsample[1] for b in blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class FusedMembers(nn.Module):
    """k eval-mode ResNet18s (1 input channel, same number of classes) as one network."""

    def __init__(self, members: list[Any], *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.k = len(members)
        with torch.no_grad():
            self.stem = _fold([m.conv1 for m in members], [m.bn1 for m in members], shared_input=True)
            self.stages = nn.ModuleList(
                nn.Sequential(
                    *[_Block([getattr(m, stage)[i] for m in members]) for i in range(len(getattr(members[0], stage)))]
                )
                for stage in ("layer1", "layer2", "layer3", "layer4")
            )
            self.fc_weight = nn.Parameter(torch.stack([m.fc.weight for m in members]).clone(), requires_grad=False)
            self.fc_bias = nn.Parameter(torch.stack([m.fc.bias for m in members]).clone(), requires_grad=False)
        device = members[0].fc.weight.device
        self.to(device=device, dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.requires_grad_(False)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem(x.to(self.dtype))), kernel_size=3, stride=2, padding=1)
        for stage in self.stages:
            x = stage(x)
        pooled = x.float().mean(dim=(2, 3)).view(x.shape[0], self.k, -1)
        return torch.einsum("bkc,koc->bko", pooled, self.fc_weight.float()) + self.fc_bias.float()
