"""Batch transforms on the training device, in the shape of torchvision's classification presets.

Input: uint8 [B, S, S] (the packed arrays, greyscale, padded square). Output: float32
[B, 1, crop, crop], normalised, on the input's device. No per-sample PIL: one gather, one
`grid_sample` per batch for crop + rotation + flip together, then jitter and normalise.

Random parameters are drawn on the CPU from the caller's `torch.Generator` (a few numbers per
image), so the same seed gives the same augmentation on CPU and CUDA.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet's per-channel means/stds averaged over RGB: the statistics of a grey image that
# the RGB-summed pretrained conv1 expects.
GREY_MEAN = 0.449
GREY_STD = 0.226


def numpy_to_tensor(array: np.ndarray) -> torch.Tensor:
    """torch view of a numpy array; read-only arrays (memmaps, load_xray output) are copied first
    because torch tensors are always writable."""
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    return torch.from_numpy(array)


def as_uint8_batch(images) -> torch.Tensor:
    """numpy/torch uint8 [S,S] or [B,S,S] → torch uint8 [B,S,S], on the input's device."""
    tensor = numpy_to_tensor(images) if isinstance(images, np.ndarray) else images
    if tensor.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {tensor.dtype}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise ValueError(f"expected [B, S, S] images, got shape {tuple(tensor.shape)}")
    return tensor


_scratch = threading.local()
# CPU working-set budget of one TrainPreset block (grid + float source + output), bytes.
_CPU_BLOCK_BYTES = 12 << 20


def _scratch_buffer(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A reusable per-thread CPU work buffer for temporaries that never leave a preset call.

    Why: a fresh multi-MB CPU tensor is mmap'd by malloc and page-faulted in on first touch every
    batch (~6,700 faults, ~26 MB, for a 32 x 224 px batch), which cost about 3x the arithmetic
    itself here. On CUDA the caching allocator already reuses memory, so this is CPU only."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    numel = math.prod(shape)
    buffer = buffers.get((name, dtype))
    if buffer is None or buffer.numel() < numel:
        buffer = buffers[(name, dtype)] = torch.empty(numel, dtype=dtype)
    return buffer[:numel].view(shape)


def _affine_grid(theta: torch.Tensor, size: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """`F.affine_grid(theta.view(-1, 2, 3), [B, 1, size, size], align_corners=False)`, computed by
    broadcasting instead of affine_grid's batched matmul against a [B, size*size, 3] base grid:
    the same numbers (to float rounding), ~20-70x faster on CPU at 224 px (the matmul has an
    inner dimension of 3, which BLAS handles badly and which stalls under thread contention)."""
    n = theta.shape[0]
    coords = (torch.arange(size, dtype=theta.dtype, device=theta.device) * 2 + 1) / size - 1  # pixel centres
    xs, ys = coords.view(1, 1, size), coords.view(1, size, 1)
    t = theta.reshape(n, 6, 1, 1).unbind(1)
    grid = torch.empty(n, size, size, 2, dtype=theta.dtype, device=theta.device) if out is None else out
    torch.add(t[0] * xs, t[1] * ys + t[2], out=grid[..., 0])
    torch.add(t[3] * xs, t[4] * ys + t[5], out=grid[..., 1])
    return grid


class EvalPreset:
    """Center crop from the packed side to `crop_size`, scale to [0, 1], normalise.

    The same object serves evaluation, predict and the app, so inference preprocessing is
    evaluation preprocessing by construction."""

    def __init__(self, *, crop_size: int, mean: float = GREY_MEAN, std: float = GREY_STD) -> None:
        self.crop_size, self.mean, self.std = crop_size, mean, std

    def __call__(self, images) -> torch.Tensor:
        batch = as_uint8_batch(images)
        height, width = batch.shape[-2:]
        if min(height, width) < self.crop_size:
            raise ValueError(f"images of {(height, width)} are smaller than crop_size={self.crop_size}")
        top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
        crop = batch[:, top : top + self.crop_size, left : left + self.crop_size]
        x = crop.unsqueeze(1).to(torch.float32).div_(255.0)
        return x.sub_(self.mean).div_(self.std)  # in place: one output allocation per batch


class TrainPreset:
    """Random resized crop + rotation + horizontal flip, brightness/contrast jitter, normalisation.
    Training settings choose the crop scale and rotation; the rest is fixed here."""

    ratio: tuple[float, float] = (0.8, 1.25)  # crop aspect (w/h); mild: bones stretch badly
    hflip_prob = 0.5  # left/right anatomy both occur
    brightness = 0.2  # multiply by a factor in [1-b, 1+b]
    contrast = 0.2  # scale deviation from the image mean by [1-c, 1+c]
    mean, std = GREY_MEAN, GREY_STD

    def __init__(
        self,
        *,
        crop_size: int,
        scale: tuple[float, float] = (0.6, 1.0),  # fraction of the image area the crop covers
        degrees: float = 10.0,  # rotation drawn from [-degrees, degrees]
    ) -> None:
        self.crop_size, self.scale, self.degrees = crop_size, scale, degrees

    def sample_params(self, batch: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(batch, generator=generator)

        area = uniform(*self.scale)
        log_ratio = uniform(math.log(self.ratio[0]), math.log(self.ratio[1])).exp()
        # Width/height as fractions of the source side; clamp so the crop stays inside.
        width = (area * log_ratio).sqrt().clamp(max=1.0)
        height = (area / log_ratio).sqrt().clamp(max=1.0)
        return {
            "width": width,
            "height": height,
            # Crop centre in normalised coords [-1, 1], kept so the crop fits before rotation.
            "cx": (1 - width) * uniform(-1.0, 1.0),
            "cy": (1 - height) * uniform(-1.0, 1.0),
            "angle": uniform(-self.degrees, self.degrees) * (math.pi / 180.0),
            "flip": torch.where(torch.rand(batch, generator=generator) < self.hflip_prob, -1.0, 1.0),
            "brightness": uniform(1 - self.brightness, 1 + self.brightness),
            "contrast": uniform(1 - self.contrast, 1 + self.contrast),
        }

    def __call__(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        batch = as_uint8_batch(images)
        n, device = batch.shape[0], batch.device
        p = self.sample_params(n, generator)
        if device.type == "cuda":
            # One pinned, non-blocking copy: a pageable copy per tensor would sync every step.
            packed = torch.stack(list(p.values())).pin_memory().to(device, non_blocking=True)
            p = dict(zip(p, packed))
        cos, sin = p["angle"].cos(), p["angle"].sin()
        width, height = p["width"] * p["flip"], p["height"]
        # Output coords (x, y) in [-1, 1] → source coords: rotate(scale(flip(x, y))) + centre.
        # Rows of the 2x3 affine matrix (theta in affine_grid's terms), one per image.
        theta = torch.stack([cos * width, -sin * height, p["cx"], sin * width, cos * height, p["cy"]], dim=1)
        # Contrast around each image's mean, brightness, clamp to [0, 1], normalise — folded into
        # one per-image scale and shift plus one clamp in normalised units (in place):
        #   v = ((x/255 - m) * c + m) * b  with m the mean of x/255;  out = (clamp(v, 0, 1) - mean) / std
        contrast, brightness = p["contrast"].view(n, 1, 1, 1), p["brightness"].view(n, 1, 1, 1)
        scale = contrast * brightness / (255.0 * self.std)
        low, high = (0.0 - self.mean) / self.std, (1.0 - self.mean) / self.std
        size, source_shape = self.crop_size, batch.shape[-2:]
        # On CPU the batch goes through in blocks whose grid + float source + output fit in cache
        # (~2x faster at 224 px for 32 images, ~3x for 64); each image is still resampled once,
        # by one grid_sample, and the numbers are those of a single whole-batch call.
        per_image = size * size * 12 + source_shape.numel() * 4
        block = n if device.type != "cpu" else max(1, min(n, _CPU_BLOCK_BYTES // per_image))
        block = -(-n // -(-n // block))  # equal blocks (32 → 11+11+10, not 14+14+4): both threads stay busy
        out = torch.empty(n, 1, size, size, device=device) if block < n else None
        for start in range(0, n, block):
            stop = min(n, start + block)
            k = stop - start
            grid = _affine_grid(
                theta[start:stop], size, out=_scratch_buffer("grid", (k, size, size, 2), theta.dtype, device)
            )
            source = _scratch_buffer("source", (k, 1, *source_shape), torch.float32, device)
            source.copy_(batch[start:stop].unsqueeze(1))
            # Resample the raw 0..255 values (grid_sample is linear, so /255 folds into the jitter).
            # Zeros outside the source = black, the same as the packed images' padding.
            x = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            mean255 = x.mean(dim=(1, 2, 3), keepdim=True)
            c, b = contrast[start:stop], brightness[start:stop]
            shift = (mean255 * (1 - c) * b / 255.0 - self.mean) / self.std
            x.mul_(scale[start:stop]).add_(shift).clamp_(low, high)
            if out is None:
                return x
            out[start:stop] = x
            del x  # one block output alive at a time: malloc reuses the same region for the next
        assert out is not None  # a single block returned above
        return out


def preprocessing_meta(*, pack_size: int, image_size: int) -> dict:
    """What model.json records so serving reproduces evaluation's preprocessing."""
    return {
        "pack_size": pack_size,
        "image_size": image_size,
        "mean": GREY_MEAN,
        "std": GREY_STD,
        "greyscale": True,
        "pad": "to square before resize, as boneflow.intake.decode.load_xray does",
        "eval_transform": "center crop pack_size -> image_size, /255, (x-mean)/std",
    }
