"""Synthetic X-ray-like pictures (numpy and PIL only): the one drawer behind the demo dataset,
the benchmarks, the tests' in-memory splits and the app's example images.

Each picture: dark noisy background, a dim soft-tissue band, one or two long bones at a random
angle and position. A fractured bone has a jagged dark gap across its shaft with the far
fragment shifted sideways, visible at 64 px; some intact bones carry a faint thin line (a
nutrient canal look-alike) that only partly crosses the shaft. Not radiographs: a model's
answer on them means nothing clinically. The demo dataset's bytes depend on the order of the
draws below: reordering them changes every demo image (and its measured accuracy in the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

_MAX_DRAWN_SIDE = 400  # pictures are drawn at most this many pixels on a side, then upscaled (cheap)


@dataclass(frozen=True)
class BoneStyle:
    """How varied and cluttered the pictures are (the defaults: the demo dataset's). Every style
    makes the same draws in the same order (a share of 0 still draws its coin), so the generator
    state advances alike."""

    angles: tuple[float, float] = (0.0, float(np.pi))  # range of the shaft's angle, radians
    second_bone_p: float = 0.2  # share of pictures with a second, intact bone
    canal_p: float = 0.25  # share of intact bones with the canal look-alike distractor


# For the small in-memory splits of tests and benchmarks: a few hundred pictures at ~48 px must be
# learnable in a few epochs. Upright bones (within 0.6 rad of vertical, so a mirror stays in
# range) and no clutter: a ResNet18 from scratch reached 0.99 test accuracy where the default
# style's any-angle, cluttered bones reached 0.76 (tests/unit/test_train_fit.py's
# loss-goes-down test, seed 2).
PLAIN_STYLE = BoneStyle(angles=(float(np.pi / 2 - 0.6), float(np.pi / 2 + 0.6)), second_bone_p=0.0, canal_p=0.0)


@dataclass(frozen=True)
class _BoneAxis:
    """Where one bone lies: pixel grids, its centre and direction, size, and the break line."""

    xx: np.ndarray
    yy: np.ndarray
    cx: float
    cy: float
    ux: float
    uy: float
    half_len: float
    radius: float
    along: np.ndarray  # signed distance along the shaft from its centre
    across: np.ndarray  # signed distance across the shaft from its axis
    break_line: np.ndarray  # signed distance from the break line (also the intact distractor's)


def _random_axis(shape: tuple[int, ...], rng: np.random.Generator, side: float, style: BoneStyle) -> _BoneAxis:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(*style.angles)
    ux, uy = np.cos(angle), np.sin(angle)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    half_len = 0.5 * np.hypot(w, h) * rng.uniform(0.45, 0.7)
    radius = side * rng.uniform(0.06, 0.10)
    along = (xx - cx) * ux + (yy - cy) * uy
    across = -(xx - cx) * uy + (yy - cy) * ux
    # The break (or the intact distractor) lies at a random place and tilt on the shaft.
    at = rng.uniform(-0.25, 0.25) * half_len
    tilt = rng.uniform(-0.5, 0.5)
    break_line = (along - at) * np.cos(tilt) + across * np.sin(tilt)
    return _BoneAxis(xx, yy, cx, cy, ux, uy, half_len, radius, along, across, break_line)


def _outline(axis: _BoneAxis, across: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The shaft's half-width at each pixel (widening towards the ends) and the bone's mask
    (shaft plus a knob at each end)."""
    half_width = axis.radius * (1 + 0.35 * (np.abs(axis.along) / axis.half_len) ** 4)
    inside = (np.abs(across) < half_width) & (np.abs(axis.along) < axis.half_len)
    for end in (-1, 1):
        ex, ey = axis.cx + end * axis.half_len * axis.ux, axis.cy + end * axis.half_len * axis.uy
        inside |= (axis.xx - ex) ** 2 + (axis.yy - ey) ** 2 < (axis.radius * rng.uniform(1.4, 1.9)) ** 2
    return half_width, inside


def _density(across: np.ndarray, half_width: np.ndarray, inside: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bone brightness: bright cortex, darker medulla, with a low-frequency texture."""
    h, w = inside.shape
    rel = np.clip(np.abs(across) / half_width, 0, 1)
    profile = rng.uniform(150, 220) * (0.62 + 0.38 * rel**3)
    noise = Image.fromarray((rng.random((max(2, h // 8), max(2, w // 8))) * 255).astype(np.uint8))
    texture = np.asarray(noise.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    return profile * (0.85 + 0.3 * texture) * inside


def draw_bone(img: np.ndarray, rng: np.random.Generator, *, fractured: bool, side: float, style: BoneStyle) -> None:
    """Add one long bone to `img` (float32 [h, w], in place); `side` is the picture's short side."""
    axis = _random_axis(img.shape, rng, side, style)
    across = axis.across
    if fractured:
        # A displaced fracture: the far fragment is shifted sideways, so the shaft's outline
        # steps at the break -- the cue a radiologist (and a small CNN at 64 px) can see.
        shift = axis.radius * rng.choice([-1, 1]) * rng.uniform(1.0, 1.5)
        across = np.where(axis.break_line > 0, across - shift, across)
    tissue = np.exp(-((across / (axis.radius * rng.uniform(2.5, 4.0))) ** 2)) * rng.uniform(35, 60)
    img += tissue * (np.abs(axis.along) < axis.half_len * 1.3)
    half_width, inside = _outline(axis, across, rng)
    bone = _density(across, half_width, inside, rng)
    jag = np.sin(across / max(axis.radius, 1) * rng.uniform(3, 7)) * side * 0.006
    if fractured:
        gap = np.abs(axis.break_line + jag) < side * rng.uniform(0.05, 0.08)
        bone[gap & (np.abs(across) < half_width * 1.2)] = 0
    elif rng.random() < style.canal_p:  # distractor: thin faint line crossing only part of the shaft
        canal = (np.abs(axis.break_line) < side * 0.006) & (across > half_width * rng.uniform(-0.2, 0.3))
        bone[canal & inside] *= 0.7
    np.maximum(img, bone + tissue * inside, out=img)


def draw_radiograph(
    rng: np.random.Generator, *, fractured: bool, width: int, height: int, style: BoneStyle = BoneStyle()
) -> np.ndarray:
    """uint8 [height, width] greyscale picture of one bone (sometimes a second, intact one),
    with a displaced fracture when `fractured`."""
    scale = min(1.0, _MAX_DRAWN_SIDE / max(width, height))
    gw, gh = max(8, int(width * scale)), max(8, int(height * scale))
    grad = np.linspace(rng.uniform(5, 25), rng.uniform(5, 35), gh, dtype=np.float32)[:, None]
    img = np.repeat(grad, gw, axis=1)
    side = float(min(gw, gh))
    draw_bone(img, rng, fractured=fractured, side=side, style=style)
    if rng.random() < style.second_bone_p:
        draw_bone(img, rng, fractured=False, side=side, style=style)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    if (gw, gh) != (width, height):
        pil = pil.resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(pil, dtype=np.float32) + rng.normal(0, 4, (height, width)).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def bone_images(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, size, size] in PLAIN_STYLE: one square picture per label (1 = fractured), in order."""
    images = np.empty((len(labels), size, size), dtype=np.uint8)
    for row, label in enumerate(labels):
        images[row] = draw_radiograph(rng, fractured=bool(label), width=size, height=size, style=PLAIN_STYLE)
    return images
