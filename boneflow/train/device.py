"""Where the model runs and how fast: the device, and every speed-up of the train and
inference step, in one place (fit, predict and the benchmarks take them from here). The
measurements behind bf16 autocast + channels_last + one input channel, torch.compile off and
torch's default thread count are in README "Performance" (notes "Training ratio", "Threads").

bf16 on CPU only where the hardware has bf16 dot products (AVX512-BF16 or AMX, detected with
torch.cpu's private but stable-since-2.1 helpers; ~2.5x per step on the README's CPU): elsewhere
oneDNN emulates bf16 and it is slower than fp32. `BONEFLOW_PRECISION=fp32|bf16` overrides the
detection (for A/B timings). Imports only torch and stdlib-only modules (the GPU script uses it).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from torch import nn

from boneflow.errors import BoneflowError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` → cuda if present else cpu; `cpu`, `cuda`, `cuda:N` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BoneflowError(f"device={name!r}: CUDA is not available on this machine; use --device cpu or auto.")
    return device


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX tiles)."""
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        # A private helper that is missing or changed shape: treat as "unknown", i.e. no.
        with contextlib.suppress(Exception):
            if getattr(torch.cpu, name)():
                return True
    return False


def use_bf16(device: torch.device) -> bool:
    forced = os.environ.get("BONEFLOW_PRECISION", "").lower()
    if forced in ("fp32", "bf16"):
        return forced == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_fast_bf16()


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` when enabled, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def precision_name(device: torch.device) -> str:
    return "bf16" if use_bf16(device) else "fp32"


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` on `device` with channels_last weights (pair with `fast_layout` inputs, else the
    convolutions convert layouts)."""
    # torch's stubs lack the (device, memory_format) form of Module.to that it accepts at runtime.
    return model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """A batch [N, C, H, W] in the channels_last layout the weights use."""
    return x.contiguous(memory_format=torch.channels_last)


def optimizer_speed(device: torch.device) -> dict[str, Any]:
    """Keyword arguments for a torch optimizer: fused kernels on CUDA, multi-tensor on CPU (the
    default per-tensor loop cost ~0.1-0.3 s a step on CPU for 11M parameters)."""
    return {"fused": True} if device.type == "cuda" else {"foreach": True}
