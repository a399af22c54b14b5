"""The network: torchvision ResNet18 with a one-channel stem, and its safe (de)serialisation.

Only torch, torchvision, safetensors and the standard library are imported here, so the GPU
script can use this module on a machine without the rest of boneflow's dependencies.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import socket
import time
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from boneflow.errors import BoneflowError
from boneflow.hashing import sha256_file

log = logging.getLogger(__name__)

ARCHITECTURE = "resnet18-1ch"
# torchvision's ImageNet resnet18 weights; $BONEFLOW_WEIGHTS_URL replaces the URL (README, "The
# two commands"; tests point it at a local server). torch.hub checks the sha256 prefix in the name.
WEIGHTS_URL_ENV = "BONEFLOW_WEIGHTS_URL"
DEFAULT_WEIGHTS_URL = ResNet18_Weights.IMAGENET1K_V1.url
HUB_WEIGHTS_NAME = posixpath.basename(urlparse(DEFAULT_WEIGHTS_URL).path)  # resnet18-f37072fd.pth
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")
# urllib waits forever by default; a stalled host must end in the offline error, not a hung run.
DOWNLOAD_TIMEOUT_S = 60.0


def weights_url() -> str:
    """Where missing ImageNet weights come from: $BONEFLOW_WEIGHTS_URL or torchvision's URL."""
    url = os.environ.get(WEIGHTS_URL_ENV) or DEFAULT_WEIGHTS_URL
    if not _HASH_IN_NAME.search(posixpath.basename(urlparse(url).path)):
        raise BoneflowError(
            f"{WEIGHTS_URL_ENV}={url}: the file name must end in -<sha256 prefix>.pth (like "
            f"{HUB_WEIGHTS_NAME}) so the download can be verified. Fix the URL or unset it."
        )
    return url


def _missing_weights_hint(path: Path) -> str:
    return (
        f"put torchvision's {HUB_WEIGHTS_NAME} at {path} (or pass weights_path / --weights-path "
        "FILE), or train from scratch with --no-pretrained."
    )


def download_imagenet_state(path: Path, url: str) -> dict[str, torch.Tensor]:
    """Fetch the weights once into `path` (the hub cache) with torch.hub: progress bar on stderr,
    sha256 prefix checked against the file name before the file is moved into place, so a bad
    or interrupted download leaves nothing in the cache."""
    log.info("downloading pretrained weights %s (not cached) from %s into %s", path.name, url, path.parent)
    started = time.perf_counter()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(path.parent),
            file_name=path.name,
            map_location="cpu",
            progress=True,
            check_hash=True,
            weights_only=True,
        )
    except (URLError, HTTPException, OSError) as err:
        # HTTPError's reason drops the status code; URLError's str wraps the reason in noise.
        reason = err if isinstance(err, HTTPError) else getattr(err, "reason", None) or err
        raise BoneflowError(
            f"pretrained weights are not cached at {path} and downloading {url} failed "
            f"({reason}). Without network: {_missing_weights_hint(path)}"
        ) from err
    except RuntimeError as err:
        if path.exists():  # downloaded and verified, but torch.load could not read it
            raise
        raise BoneflowError(
            f"{url}: the downloaded file failed the sha256 check ({err}); nothing was saved in "
            f"{path.parent}. The transfer was corrupted or the host serves other weights: try "
            f"again, or {_missing_weights_hint(path)}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)
    log.info(
        "pretrained weights %s downloaded and verified: %.1f MiB in %.1fs",
        path.name,
        path.stat().st_size / 2**20,
        time.perf_counter() - started,
    )
    return state


def load_imagenet_state(weights_path: Path | None = None) -> dict[str, torch.Tensor]:
    """ImageNet resnet18 weights from `weights_path` (never downloaded), or else the torch hub
    cache, downloading them into it once when missing. A hash in the file name (`name-<hex>.pth`,
    torchvision's convention) must be the start of the file's sha256."""
    if not weights_path:
        url = weights_url()
        path = Path(torch.hub.get_dir()) / "checkpoints" / posixpath.basename(urlparse(url).path)
        state = _load_checked(path) if path.is_file() else download_imagenet_state(path, url)
    else:
        path = Path(weights_path)
        if not path.is_file():
            raise BoneflowError(
                f"pretrained weights file {path} (weights_path / --weights-path) does not exist. "
                f"Point it at torchvision's {HUB_WEIGHTS_NAME}, leave it empty to use the torch "
                "hub cache, or train from scratch with --no-pretrained."
            )
        state = _load_checked(path)
    if "conv1.weight" not in state:
        raise BoneflowError(f"{path}: no 'conv1.weight' key; this is not a torchvision resnet18 state dict.")
    return state


def _load_checked(path: Path) -> dict[str, torch.Tensor]:
    match = _HASH_IN_NAME.search(path.name)
    if match and not sha256_file(path).startswith(match.group(1)):
        raise BoneflowError(
            f"{path}: sha256 does not start with {match.group(1)} as its name says; the file is "
            "corrupt or not the weights it claims to be. Replace it (delete it to download it "
            "again) or use --no-pretrained."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


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
            raise BoneflowError(f"pretrained weights do not fit resnet18: missing={missing} unexpected={unexpected}")
    return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous (channels_last weights are not), without torch.compile's prefix."""
    inner = getattr(model, "_orig_mod", model)
    return {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}


def save_model(model: nn.Module, out_dir: Path, *, meta: dict) -> tuple[Path, Path]:
    """Write `model.safetensors` and `model.json` (`meta` with `architecture` and `num_classes`
    added; train/package.py decides the rest) into out_dir."""
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
    """Model in eval mode on CPU, and its meta. Never unpickles anything. A model.json that
    lists `members` (a cross-fitted run) gives the fold ensemble of the member files beside
    `safetensors_path` (train/ensemble.py)."""
    from safetensors.torch import load_file

    from boneflow.train.ensemble import load_members

    meta = json.loads(Path(json_path).read_text())
    if meta.get("architecture") != ARCHITECTURE:
        raise BoneflowError(f"{json_path}: architecture {meta.get('architecture')!r}, expected {ARCHITECTURE!r}.")
    model = build_model(num_classes=int(meta.get("num_classes", len(meta.get("classes", (0, 1))))))
    model.load_state_dict(load_file(str(safetensors_path)))
    return load_members(Path(safetensors_path).parent, meta, model.eval()), meta
