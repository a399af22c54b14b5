"""The network: torchvision ResNet18 with a one-channel stem, and its safe (de)serialisation.

Only torch, torchvision, safetensors and the standard library are imported here, so the GPU
script can use this module on a machine without the rest of boneflow's dependencies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

from boneflow.hashing import sha256_file

ARCHITECTURE = "resnet18-1ch"
# torchvision's ImageNet resnet18 file as the hub cache names it; the part after the dash is
# the first 8 hex digits of its sha256, which we check before loading.
HUB_WEIGHTS_NAME = "resnet18-f37072fd.pth"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")


def _error(message: str) -> Exception:
    # boneflow.errors is stdlib-only; imported lazily so this module also works when copied alone.
    try:
        from boneflow.errors import BoneflowError
    except ImportError:  # pragma: no cover - only on a bare GPU box
        BoneflowError = RuntimeError  # noqa: N806
    return BoneflowError(message)


def hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_WEIGHTS_NAME


def load_imagenet_state(weights_path: Path | None = None) -> dict[str, torch.Tensor]:
    """ImageNet resnet18 weights from `weights_path` or the torch hub cache; never downloads.

    When the file name carries a hash (`name-<hex>.pth`, torchvision's convention) the file's
    sha256 must start with it."""
    path = Path(weights_path) if weights_path else hub_weights_path()
    if not path.is_file():
        raise _error(
            f"pretrained weights requested but {path} does not exist. Put torchvision's "
            f"{HUB_WEIGHTS_NAME} there (or pass weights_path / --weights-path), or train from "
            "scratch with --no-pretrained. boneflow never downloads weights during a run."
        )
    match = _HASH_IN_NAME.search(path.name)
    if match and not sha256_file(path).startswith(match.group(1)):
        raise _error(
            f"{path}: sha256 does not start with {match.group(1)} as its name says; the file is "
            "corrupt or not the weights it claims to be. Replace it or use --no-pretrained."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "conv1.weight" not in state:
        raise _error(f"{path}: no 'conv1.weight' key; this is not a torchvision resnet18 state dict.")
    return state


def build_model(*, num_classes: int = 2, pretrained: bool = False, weights_path: Path | None = None) -> nn.Module:
    """ResNet18 taking [B, 1, H, W]. Pretrained: ImageNet weights with conv1 summed over RGB
    (a grey image fed to all three channels gives the same first activations), new head."""
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained or weights_path:
        state = load_imagenet_state(weights_path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"fc.weight", "fc.bias"}:
            raise _error(f"pretrained weights do not fit resnet18: missing={missing} unexpected={unexpected}")
    return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous (channels_last weights are not), without torch.compile's prefix."""
    inner = getattr(model, "_orig_mod", model)
    return {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}


def save_model(model: nn.Module, out_dir: Path, *, meta: dict) -> tuple[Path, Path]:
    """Write `model.safetensors` and `model.json` into out_dir.

    meta should hold `classes`, `preprocessing` ({pack_size, image_size, mean, std, greyscale,
    pad}) and `config` (the settings); `architecture` and `num_classes` are added here."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = plain_state_dict(model)
    num_classes = int(state["fc.weight"].shape[0])
    info = {"architecture": ARCHITECTURE, "num_classes": num_classes, **meta}
    weights_file, json_file = out_dir / "model.safetensors", out_dir / "model.json"
    save_file(state, str(weights_file), metadata={"architecture": ARCHITECTURE})
    json_file.write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return weights_file, json_file


def load_model(safetensors_path: Path, json_path: Path) -> tuple[nn.Module, dict]:
    """Model in eval mode on CPU, and its meta. Never unpickles anything."""
    from safetensors.torch import load_file

    meta = json.loads(Path(json_path).read_text())
    if meta.get("architecture") != ARCHITECTURE:
        raise _error(f"{json_path}: architecture {meta.get('architecture')!r}, expected {ARCHITECTURE!r}.")
    model = build_model(num_classes=int(meta.get("num_classes", len(meta.get("classes", (0, 1))))))
    model.load_state_dict(load_file(str(safetensors_path)))
    return model.eval(), meta
