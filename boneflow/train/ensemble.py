"""The fold ensemble as one network: what a cross-fitted run publishes and serving runs (README,
"Cross-fitting": the member files and model.json's `members`). `model.safetensors` is member 0,
so a reader that knows nothing of members still loads a working single model.

`FoldEnsemble` returns two-class logits whose margin is T * logit(mean_j sigmoid(m_j / T)), T the
run's published temperature (model.json `temperature`): evaluation's and serving's
sigmoid(margin / T) then gives the members' mean calibrated probability.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

MAX_MEMBERS = 10  # RetrainConfig.folds' upper bound


def member_file(index: int) -> str:
    """The run-folder file of member `index` (member 0 is model.safetensors)."""
    return "model.safetensors" if index == 0 else f"member-{index}.safetensors"


class FoldEnsemble(nn.Module):
    """Callable like a ResNet18: images [B,1,H,W] -> logits [B,2] of the members' mean."""

    def __init__(self, members: list[nn.Module], *, temperature: float = 1.0) -> None:
        super().__init__()
        if not members:
            raise ValueError("a fold ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margins = self._member_logits(x) @ torch.tensor([-1.0, 1.0], device=x.device)  # [k, B]
        mean = torch.sigmoid(margins / self.temperature).mean(dim=0).clamp(1e-12, 1 - 1e-12)
        margin = self.temperature * torch.log(mean / (1 - mean))
        return torch.stack([torch.zeros_like(margin), margin], dim=1)

    def _member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[k, B, classes]. In bf16 inference (autocast to bf16, no gradients) the members run as
        one fused bf16 network (train/fused_members.py); otherwise one after another, each exactly
        as alone (Grad-CAM, training, fp32)."""
        device = x.device.type
        if (
            not torch.is_grad_enabled()
            and not self.training
            and torch.is_autocast_enabled(device)
            and torch.get_autocast_dtype(device) == torch.bfloat16
        ):
            with torch.autocast(device_type=device, enabled=False):
                return self._fused(x.device)(x).transpose(0, 1)
        return torch.stack([m(x).float() for m in self.members])

    def _fused(self, device: torch.device):
        from boneflow.train.fused_members import FusedMembers

        fused = self.__dict__.get("_fused_members")  # kept out of state_dict and .to()
        if fused is None or fused.fc_weight.device != device:
            fused = FusedMembers(list(self.members), dtype=torch.bfloat16).to(device)
            self.__dict__["_fused_members"] = fused
        return fused


def load_members(folder: Path, meta: dict, first: nn.Module) -> nn.Module:
    """`first` (model.safetensors, already loaded) alone, or the FoldEnsemble of every member
    model.json lists, loaded from `folder` (each name must equal member_file(index))."""
    from safetensors.torch import load_file

    listed = meta.get("members") or []
    if len(listed) <= 1:
        return first
    if len(listed) > MAX_MEMBERS:
        raise ValueError(f"model.json lists {len(listed)} members, at most {MAX_MEMBERS} are allowed")
    models = []
    for index, entry in enumerate(listed):
        name = str(entry.get("weights", ""))
        if name != member_file(index):
            raise ValueError(f"model.json member {index}: weights {name!r}, expected {member_file(index)!r}")
        model = first
        if index > 0:
            model = copy.deepcopy(first)  # the same network; its weights are replaced next
            model.load_state_dict(load_file(str(Path(folder) / name)))
        models.append(model.eval())
    return FoldEnsemble(models, temperature=float(meta.get("temperature", 1.0))).eval()
