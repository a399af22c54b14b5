"""The fold ensemble as one network: what a cross-fitted run publishes and serving runs.

model.json lists `members` (each: weights file in the run folder, its sha256, the fold it never
saw); `model.safetensors` is member 0, so a reader that knows nothing of members still loads a
working single model. `FoldEnsemble` runs every member on the same input (decoded and
preprocessed once) and returns two-class logits whose margin is T * logit(mean_j sigmoid(m_j / T)):
evaluation's and serving's sigmoid(margin / T) then gives the members' mean calibrated
probability, so predict, the app, the champion re-score and evaluation need no second code path.
The temperature T is the run's published one (model.json `temperature`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

MEMBER_FILE_RE = re.compile(r"^(model|member-[0-9]{1,2})\.safetensors$")
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
        margins = torch.stack([(m(x).float() @ torch.tensor([-1.0, 1.0], device=x.device)) for m in self.members])
        mean = torch.sigmoid(margins / self.temperature).mean(dim=0).clamp(1e-12, 1 - 1e-12)
        margin = self.temperature * torch.log(mean / (1 - mean))
        return torch.stack([torch.zeros_like(margin), margin], dim=1)


def load_members(folder: Path, meta: dict, first: nn.Module) -> nn.Module:
    """`first` (model.safetensors, already loaded) alone, or the FoldEnsemble of every member
    model.json lists, loaded from `folder` (names checked: member files only)."""
    from safetensors.torch import load_file

    from boneflow.train.model import build_model

    listed = meta.get("members") or []
    if len(listed) <= 1:
        return first
    if len(listed) > MAX_MEMBERS:
        raise ValueError(f"model.json lists {len(listed)} members, at most {MAX_MEMBERS} are allowed")
    models = []
    for index, entry in enumerate(listed):
        name = str(entry.get("weights", ""))
        if not MEMBER_FILE_RE.match(name) or name != member_file(index):
            raise ValueError(f"model.json member {index}: weights {name!r}, expected {member_file(index)!r}")
        if index == 0:
            models.append(first)
            continue
        model = build_model(num_classes=int(meta.get("num_classes", 2)))
        model.load_state_dict(load_file(str(Path(folder) / name)))
        models.append(model.eval())
    return FoldEnsemble(models, temperature=float(meta.get("temperature", 1.0))).eval()
