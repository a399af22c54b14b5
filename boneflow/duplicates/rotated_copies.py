"""Rotated copies: `rotated_links`, stage 2 (stage 1: rotated_candidates.py, rotated_polar.py;
the method and its figures: README, "Honest evaluation: duplicate groups and the split policy").

`_verify` fits a centred linear map per candidate pair (inverse-compositional Gauss-Newton),
then scores the texture the map brings into line, in blocks of pairs with no Python loop over
pairs. Measured (scripts/measure_grouping.py): 5 % of Kaggle copy pairs score under 0.45 (their
links come through other members of the family); plain band-passed correlation (no edge
weights) put distinct synthetic shafts at up to 0.92, above many true copies; a translation in
the fitted map let distinct images slide into line, and copies turned about their centre need none.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from boneflow.duplicates.rotated_candidates import DARK, block_size, candidates, grid, in_chunks, inverse_2x2, sample
from boneflow.duplicates.rotated_polar import polar_candidates
from boneflow.settings import GroupingSettings

_ALIGN_STEPS = ((16, 2), (32, 2), (64, 1))  # (side, Gauss-Newton steps), coarse to fine
_PRESCREEN = (3, 1.5, 0.3)  # at the next-to-last side: band (px), edge softness, least texture score kept
_TEXTURE = (3, 1.5)  # at full side: band (px) and edge softness (grey levels/px)
_SEGMENT = 2048  # pairs verified together (bounds the per-image terms held at once)
_ROUNDS = (1, 2, 3, 5)  # candidate ranks verified first; later rounds skip pairs already joined


# --- stage 2: alignment ----------------------------------------------------------------------


def _gradients(images):
    """[n, 1, S, S] → [n, 2, S*S]: d/dx, d/dy in normalised coordinates (central differences)."""
    side = images.shape[-1]
    p = F.pad(images, (1, 1, 1, 1), mode="replicate")
    gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) * (side / 4)
    gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) * (side / 4)
    return torch.cat([gx, gy], 1).reshape(len(images), 2, -1)


def _hessian_index() -> list[int]:
    """Where H[i, j] sits in the flattened 3 x 3 sums of (gradient products) x (coordinate
    products); parameter i is entry (row r_i, column c_i) of the linear map."""
    rows, cols, product = (0, 0, 1, 1), (0, 1, 0, 1), ((0, 1), (1, 2))  # (xx, xy, yy) order
    return [3 * product[rows[i]][rows[j]] + product[cols[i]][cols[j]] for i in range(4) for j in range(4)]


_HESSIAN_INDEX = _hessian_index()


def _template_terms(images):
    """What inverse-compositional Gauss-Newton needs of each still image (the template): its
    pixels, mean and spread, normalised gradients, and the inverse Hessian of the 4 entries of
    the linear map (d11, d12, d21, d22), whose steepest-descent images are g_r * p_c."""
    n, side = len(images), images.shape[-1]
    pts = grid(side)
    g = _gradients(images)  # [n, 2, P]
    gg = torch.stack([g[:, 0] * g[:, 0], g[:, 0] * g[:, 1], g[:, 1] * g[:, 1]], 1)  # [n, 3, P]
    pp = torch.stack([pts[:, 0] * pts[:, 0], pts[:, 0] * pts[:, 1], pts[:, 1] * pts[:, 1]], 1)  # [P, 3]
    s = (gg.reshape(-1, side * side) @ pp).reshape(n, 3, 3)  # sum over pixels of g_r g_s p_c p_d
    hessian = s.reshape(n, 9)[:, _HESSIAN_INDEX].reshape(n, 4, 4)
    hinv = torch.linalg.inv(hessian + 1e-3 * torch.eye(4))
    flat = images.reshape(n, -1)
    return flat, flat.mean(1, keepdim=True), flat.std(1, keepdim=True), g, hinv


def _align_level(images, terms, b, a, maps, steps: int):
    """Refine maps [N, 2, 2] (b's coordinates → a's) so a, sampled there, matches b (`b` indexes
    the still images' `terms`, `a` the images). Gain and offset are matched once, at the first
    step, so only the geometry is fitted."""
    flat, mean, std, grads, hinv = terms
    side = images.shape[-1]
    pts = grid(side)
    src, t, t_grads, t_hinv = images[a], flat[b], grads[b], hinv[b]
    start, gain, offset = maps, None, None
    for _ in range(steps):
        v = sample(src, maps, pts)[:, 0]
        if gain is None:
            v_mean = v.mean(1, keepdim=True)
            gain = std[b] / v.std(1, keepdim=True).clamp(min=1e-3)
            offset = mean[b] - gain * v_mean
        err = gain * v + offset - t
        g = ((t_grads * err[:, None]).reshape(-1, side * side) @ pts).reshape(-1, 4, 1)
        delta = (t_hinv @ g).reshape(-1, 2, 2)
        maps = maps @ inverse_2x2(torch.eye(2) + delta)
    lost = ~maps.reshape(-1, 4).isfinite().all(1)  # a degenerate pair (flat image): keep its guess
    return torch.where(lost[:, None, None], start, maps)


def _align(levels, b, a, maps):
    """Refine maps [N, 2, 2] through the given pyramid levels, coarse to fine, in pair blocks;
    template terms are computed for the still images these pairs use, once per level."""
    for images, steps in levels:
        if len(b) == 0:
            break
        used, local = torch.unique(b, return_inverse=True)
        terms = in_chunks(_template_terms, images[used])
        size = block_size(images.shape[-1])
        blocks = [slice(i, i + size) for i in range(0, len(b), size)]
        maps = torch.cat([_align_level(images, terms, local[s], a[s], maps[s], steps) for s in blocks])
    return maps


# --- stage 2: texture check ------------------------------------------------------------------


def _local_mean(images, size: int, mode: str):
    """Box mean over size x size, same shape out; summed from shifted slices (twice as fast as
    avg_pool2d on CPU)."""
    side = images.shape[-1]
    padded = F.pad(images, (size // 2,) * 4, mode=mode)
    rows = padded[..., :side].clone()
    for i in range(1, size):
        rows += padded[..., i : i + side]
    out = rows[..., :side, :].clone()
    for i in range(1, size):
        out += rows[..., i : i + side, :]
    return out / (size * size)


def _edge_strength(images, mode: str):
    """Gradient magnitude of the lightly smoothed images, in grey levels per pixel, [n, S*S]."""
    g = _gradients(_local_mean(images, 3, mode)) / (images.shape[-1] / 2)
    return (g[:, 0] ** 2 + g[:, 1] ** 2).sqrt()  # not .norm(dim=1): a strided 2-element norm is slow on CPU


def _texture_terms(images, band: int):
    """Per image, as the still one of a pair: pixels, band-passed pixels, edge strength, [n, S*S]."""
    n = len(images)
    return (
        images.reshape(n, -1),
        (images - _local_mean(images, band, "replicate")).reshape(n, -1),
        _edge_strength(images, "replicate"),
    )


def _texture_scores(images, b, a, maps, band: int, softness: float):
    """Correlation of the band-passed pixels of b and of a mapped onto b (black outside a's
    frame: a turned copy's frame is an edge in the other image), over the pixels not black in
    both, each weighted down by the steeper edge of the two: outlines match in many different
    images and carry a true copy's resampling residue; fine texture matches only in a copy."""
    if len(b) == 0:
        return torch.zeros(0)
    used, local = torch.unique(b, return_inverse=True)
    flat, band_b, edges_b = in_chunks(lambda chunk: _texture_terms(chunk, band), images[used])
    side = images.shape[-1]
    pts = grid(side)
    out, size = [], block_size(side, 2)
    for start in range(0, len(b), size):
        sl = slice(start, start + size)
        bb = local[sl]
        mapped = sample(images[a[sl]], maps[sl], pts).reshape(-1, 1, side, side)
        lit = (mapped.reshape(len(bb), -1) > DARK) | (flat[bb] > DARK)
        edges = torch.maximum(edges_b[bb], _edge_strength(mapped, "replicate"))
        mapped_band = (mapped - _local_mean(mapped, band, "replicate")).reshape(len(bb), -1)
        out.append(_weighted_corr(mapped_band, band_b[bb], lit / (1.0 + (edges / softness) ** 2)))
    return torch.cat(out)


def _weighted_corr(x, y, w):
    total = w.sum(1, keepdim=True).clamp(min=1e-6)
    x = x - (w * x).sum(1, keepdim=True) / total
    y = y - (w * y).sum(1, keepdim=True) / total
    return (w * x * y).sum(1) / ((w * x * x).sum(1) * (w * y * y).sum(1)).sqrt().clamp(min=1e-6)


# --- stage 2: rounds -------------------------------------------------------------------------


def _components(labels, b, a):
    """Component labels (smallest member) after joining the pairs (b, a): hook and jump until
    nothing changes (no loop over pairs)."""
    if len(b) == 0:
        return labels
    while True:
        lb, la = labels[b], labels[a]
        low = torch.minimum(lb, la)
        hooked = labels.scatter_reduce(0, lb, low, reduce="amin").scatter_reduce(0, la, low, reduce="amin")
        hooked = hooked[hooked]
        if torch.equal(hooked, labels):
            return labels
        labels = hooked


def _verify_pairs(levels, b, a, maps, min_corr: float):
    """Align the pairs coarse, drop those whose texture already disagrees at the coarse side,
    align the rest at full side; the pairs whose texture score reaches min_corr. In segments
    of pairs sorted by still image, so per-image terms are computed once per segment and
    memory stays bounded whatever the dataset's size."""
    order = torch.argsort(b)
    b, a, maps = b[order], a[order], maps[order]
    hits = []
    for start in range(0, len(b), _SEGMENT):
        sl = slice(start, start + _SEGMENT)
        sb, sa = b[sl], a[sl]
        m = _align(levels[:-1], sb, sa, maps[sl])
        keep = _texture_scores(levels[-2][0], sb, sa, m, *_PRESCREEN[:2]) >= _PRESCREEN[2]
        sb, sa, m = sb[keep], sa[keep], m[keep]
        m = _align(levels[-1:], sb, sa, m)
        hit = _texture_scores(levels[-1][0], sb, sa, m, *_TEXTURE) >= min_corr
        hits.append((sb[hit], sa[hit]))
    if not hits:
        return b, a
    return torch.cat([h[0] for h in hits]), torch.cat([h[1] for h in hits])


def _verify(fine, b, a, maps, rank, min_corr: float):
    """Stage 2 in rounds by candidate rank: a pair whose images a verified link already joins
    (directly or through a chain) adds nothing to the groups, so it is not verified."""
    levels = [(F.adaptive_avg_pool2d(fine, side) if side != fine.shape[-1] else fine, n) for side, n in _ALIGN_STEPS]
    labels = torch.arange(len(fine))
    bounds = (0, *_ROUNDS, len(rank) + 1)
    found = []
    for lo, hi in itertools.pairwise(bounds):
        sel = (rank >= lo) & (rank < hi) & (labels[b] != labels[a])
        hb, ha = _verify_pairs(levels, b[sel], a[sel], maps[sel], min_corr)
        labels = _components(labels, hb, ha)
        found.append((hb, ha))
    return torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found])


def rotated_links(thumbs: np.ndarray, *, settings: GroupingSettings = GroupingSettings()) -> list[tuple[int, int]]:
    """(i, j) pairs of `thumbs` (uint8 [n, 64, 64]) where one is a turned copy of the other (any
    angle, mirrored or not); enough of them to join every such copy to its group, not every pair of the group."""
    if len(thumbs) < 2:
        return []
    fine = torch.from_numpy(np.ascontiguousarray(thumbs, dtype=np.float32))[:, None]
    # One torch thread, for a shared 2-core machine (README, "Honest evaluation", Time); with the
    # machine nearly free, 2 threads are ~1.6x faster (5.4 vs 8.5 s on 3,895 images, load 3-4).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # A pair both searches propose is verified under each guess: the small-angle one models
        # a turn of a non-square original, the any-angle one larger turns and mirrors.
        parts = [candidates(fine, settings), polar_candidates(fine, settings)]
        b, a, maps, rank = (torch.cat(p) for p in zip(*parts))
        if len(b) == 0:
            return []
        hb, ha = _verify(fine, b, a, maps, rank, settings.rotation_min_corr)
    finally:
        torch.set_num_threads(threads)
    return list(zip(hb.tolist(), ha.tolist()))
