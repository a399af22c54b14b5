"""Any-angle rotated copies, stage 1: candidate pairs at any turn, mirrored or not, at any content
scale a chain of turns with `expand` leaves (rotated_copies.py verifies them; the idea: README,
"Honest evaluation: duplicate groups and the split policy", step 1).

On the log-polar grid (`_RINGS` rings in geometric steps of `_RING_RATIO`, `_SPOKES` samples
around each) each image keeps its best `any_angle_candidates` matches, rows and columns, by the
correlation of its turn- and mirror-invariant ring descriptors at every ring shift up to
+-`_MAX_RING_SHIFT`; each candidate pair's turn is then read off the circular cross-correlation
along the spokes, the image and its mirror both tried: a map (turn, scale, mirror) that the
verification refines. The octagonal black frame of chained turns lies outside the rings a
smaller copy shares with a larger one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from boneflow.duplicates.rotated_candidates import (
    _ASPECTS,
    _has_black_corners,
    _normalise,
    inverse_2x2,
    sample,
    top_pairs,
)
from boneflow.settings import GroupingSettings

_SIDE = 32  # log-polar samples are taken from the thumbnail pooled to this side
_RINGS = 12
_INNER = 0.12  # radius of the innermost ring, of the half-side (the outermost is 0.12 * 1.2**11 = 0.89)
_RING_RATIO = 1.2  # radius ratio of neighbouring rings
_SPOKES = 64  # samples around each ring (5.6 degrees apart)
_FREQS = 11  # Fourier coefficients 1..11 kept per ring (their magnitudes are turn- and mirror-invariant)
# Scale ratios up to 1.2**4 = 2.07 either way (a chain of three 30-degree turns: 0.39 vs 1 is through links).
_MAX_RING_SHIFT = 4
_MIN_SHARED = 7  # rings two images must share to be compared
_ROW_BLOCK = 256
_FLIP = ((-1.0, 0.0), (0.0, 1.0))  # left-right mirror in normalised coordinates


def _polar_points():
    """[R * A, 2] normalised (x, y) of the log-polar grid, ring-major."""
    radii = _INNER * _RING_RATIO ** torch.arange(_RINGS, dtype=torch.float32)
    theta = torch.arange(_SPOKES, dtype=torch.float32) * (2 * math.pi / _SPOKES)
    x = radii[:, None] * theta.cos()[None, :]
    y = radii[:, None] * theta.sin()[None, :]
    return torch.stack([x.reshape(-1), y.reshape(-1)], 1)


def log_polar(images, maps=None):
    """images [n, 1, S, S] → log-polar samples [n, R, A]; with maps [n, 2, 2], of each image
    seen through its map (a mirror, an aspect restored)."""
    small = F.adaptive_avg_pool2d(images, _SIDE)
    maps = torch.eye(2).expand(len(small), 2, 2) if maps is None else maps
    out = [sample(small[i : i + 512], maps[i : i + 512], _polar_points()) for i in range(0, len(small), 512)]
    polar = torch.cat(out)[:, 0] if out else torch.zeros(0, _RINGS * _SPOKES)
    return polar.reshape(len(images), _RINGS, _SPOKES)


def _columns(fine):
    """The images the rows are compared with: every image as it is, and every original (no black
    corners) also with a non-square original's aspect restored (its thumbnail squashed it to a
    square). (owner image [V], map from the column's coordinates to its owner's [V, 2, 2],
    aspect number [V]: 0 as it is, 1.. per `_ASPECTS`)."""
    n = len(fine)
    plain = torch.nonzero(~_has_black_corners(fine)).reshape(-1)
    owners, maps, kinds = [torch.arange(n)], [torch.eye(2).expand(n, 2, 2)], [torch.zeros(n, dtype=torch.long)]
    for k, r in enumerate(_ASPECTS, start=1):
        stretch = torch.diag(torch.tensor([max(1.0, r), max(1.0, 1 / r)], dtype=torch.float32))
        owners.append(plain)
        maps.append(stretch.expand(len(plain), 2, 2))
        kinds.append(torch.full((len(plain),), k, dtype=torch.long))
    return torch.cat(owners), torch.cat(maps), torch.cat(kinds)


def _descriptors(polar):
    """Per ring, turn- and mirror-invariant: ([n, R, K] magnitudes of Fourier coefficients 1..K
    along the ring, [n, R - 1, K] the real part of each coefficient times the conjugate of the
    next ring's, scaled to a magnitude: how neighbouring rings line up). The ring's mean
    (coefficient 0) is left out: the black frame of a chain of turns darkens the outer rings of
    one copy and not of another (with it, a planted copy's family came first for 12 of 60 real
    radiographs, without it for 55)."""
    f = torch.fft.rfft(polar, dim=2)[:, :, 1 : _FREQS + 1]
    mag = f.abs()
    pair = (f[:, :-1] * f[:, 1:].conj()).real / (mag[:, :-1] * mag[:, 1:]).sqrt().clamp(min=1e-6)
    return mag, pair


def _shifts():
    return [d for d in range(-_MAX_RING_SHIFT, _MAX_RING_SHIFT + 1) if _RINGS - abs(d) >= _MIN_SHARED]


def _windows(rows_desc, cols_desc):
    """Per ring shift d: (rows' vectors, columns' vectors), normalised: row image b's ring i
    faces column image a's ring i + d."""

    def window(desc, lo: int, hi: int):
        mag, pair = desc
        n = len(mag)
        return _normalise(torch.cat([mag[:, lo:hi].reshape(n, -1), pair[:, lo : hi - 1].reshape(n, -1)], dim=1))

    out = {}
    for d in _shifts():
        lo, hi = max(0, -d), _RINGS - max(0, d)
        out[d] = (window(rows_desc, lo, hi), window(cols_desc, lo + d, hi + d))
    return out


def _best_scores(windows, owner, rows):
    """Best descriptor correlation of the images `rows` with every column over ring shifts [m, V]."""
    scores = (row_vecs[rows] @ cols.T for row_vecs, cols in windows.values())
    best = next(scores)
    for s in scores:
        torch.maximum(best, s, out=best)
    best[owner[None, :] == rows[:, None]] = -2.0  # never a copy of itself
    return best


def _ring_spectra(polar):
    """[n, R, A // 2 + 1]: the Fourier transform along each ring of its samples, each ring
    centred and scaled to unit norm first (so every ring weighs the same in a correlation)."""
    centred = polar - polar.mean(dim=2, keepdim=True)
    return torch.fft.rfft(centred / (centred.norm(dim=2, keepdim=True) + 1e-6), dim=2)


def _best_turn(spec_b, spec_a):
    """Mean circular cross-correlation, over the rings two images share, of b's rings with a's
    for every ring shift and spoke offset; the best: (score [m], ring shift [m], spoke offset [m])."""
    shifts = torch.tensor(_shifts())
    partner = torch.arange(_RINGS)[None, :] + shifts[:, None]  # [S, R]: a's ring facing b's ring i
    valid = (partner >= 0) & (partner < _RINGS)
    fa = spec_a[:, partner.clamp(0, _RINGS - 1)] * valid[None, :, :, None]  # [m, S, R, F]
    cross = (spec_b.conj()[:, None] * fa).sum(dim=2)  # [m, S, F]
    corr = torch.fft.irfft(cross, n=_SPOKES, dim=2) / valid.sum(dim=1)[None, :, None]  # sum_j b(j) a(j + m)
    score, flat = corr.reshape(len(corr), -1).max(dim=1)
    return score, shifts[flat // _SPOKES], flat % _SPOKES


def _pair_maps(spec, cols, cols_mirror, b, a):
    """Two maps [N, 2, 2] from b's coordinates to a's for each pair, the turn and scale that
    best line up the two log-polar samples (every ring shift tried): with a as it is, and with
    a mirrored. Both are verified: on a nearly symmetric radiograph the wrong one can score
    higher here."""
    out = []
    for source, base in ((cols, torch.eye(2)), (cols_mirror, torch.tensor(_FLIP))):
        maps = []
        for i in range(0, len(b), 1024):
            _, ring, spoke = _best_turn(spec[b[i : i + 1024]], source[a[i : i + 1024]])
            phi = spoke.float() * (2 * math.pi / _SPOKES)
            scale = _RING_RATIO ** ring.float()
            cos, sin = phi.cos() * scale, phi.sin() * scale
            maps.append(base @ torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1))
        out.append(torch.cat(maps) if maps else torch.zeros(0, 2, 2))
    return out


def polar_candidates(fine, settings: GroupingSettings):
    """Any-angle stage 1 → (b, a, map, rank) as rotated_candidates.candidates returns them, for
    any turn, mirrored or not, rescaled by a chain of turns. Each pair comes twice: a's guess as
    it is, then mirrored."""
    n, k = len(fine), min(settings.any_angle_candidates, len(fine) - 1)
    if k <= 0:
        return (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0, 2, 2), torch.zeros(0, dtype=torch.long))
    owner, stretch, kind = _columns(fine)
    polar = log_polar(fine)
    cols = log_polar(fine[owner], stretch)
    windows = _windows(_descriptors(polar), _descriptors(cols))
    blocks = ((rows, _best_scores(windows, owner, rows)) for rows in torch.arange(n).split(_ROW_BLOCK))
    b, col, _, rank = top_pairs(blocks, len(owner), k, _ROW_BLOCK)
    a = owner[col]
    key = ((torch.minimum(a, b) * n + torch.maximum(a, b)) * (len(_ASPECTS) + 1) + kind[col]).numpy()
    first = torch.from_numpy(np.unique(key, return_index=True)[1])  # each unordered pair once per aspect
    b, col, rank = b[first], col[first], rank[first]
    mirrored_cols = log_polar(fine[owner], stretch @ torch.tensor(_FLIP))
    plain, mirrored = _pair_maps(_ring_spectra(polar), _ring_spectra(cols), _ring_spectra(mirrored_cols), b, col)
    maps = stretch[col.repeat(2)] @ torch.cat([plain, mirrored])  # column coordinates → its owner's
    return _smaller_still(b.repeat(2), owner[col].repeat(2), maps, rank.repeat(2))


def _smaller_still(b, a, maps, rank):
    """Each pair oriented so the still image b is the one whose content is smaller (the map
    from b to a enlarges): a is then sampled at a finer pitch than its own, so its texture
    survives; the other way round a copy shrunk by a chain of turns, blown up, is too blurred
    to match (texture scores 0.25-0.31 one way, 0.91-0.93 the other, on demo copies turned
    30 + 30 degrees)."""
    swap = torch.det(maps).abs() < 1.0
    return (
        torch.where(swap, a, b),
        torch.where(swap, b, a),
        torch.where(swap[:, None, None], inverse_2x2(maps), maps),
        rank,
    )
