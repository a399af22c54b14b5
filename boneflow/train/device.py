"""Where training runs and in which precision.

bf16 autocast is used on CUDA and on CPUs with native bf16 math. Detection on CPU, in order:
1. `torch.cpu._is_avx512_bf16_supported()` / `torch.cpu._is_amx_tile_supported()` (private but
   stable since torch 2.1): the hardware has bf16 dot-product instructions (AVX512-BF16 or AMX),
   which is where bf16 beats fp32 (this 2-core AMD EPYC reports AVX512-BF16: ~2.5x per step).
2. Otherwise fp32: on CPUs without those instructions oneDNN emulates bf16 and it is slower.
`BONEFLOW_PRECISION=fp32|bf16` overrides the detection (for A/B timings).
Imports only torch and the standard library (the GPU script uses this module).
"""

from __future__ import annotations

import contextlib
import os

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` → cuda if present else cpu; `cpu`, `cuda`, `cuda:N` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from boneflow.errors import BoneflowError

        raise BoneflowError(f"device={name!r}: CUDA is not available on this machine; use --device cpu or auto.")
    return device


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX tiles)."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    for check in checks:
        try:
            if check is not None and check():
                return True
        except Exception:  # a private helper that changed shape: treat as "unknown", i.e. no
            continue
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
