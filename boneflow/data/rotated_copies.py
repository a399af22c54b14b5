"""Small-angle rotated copies: candidates, alignment, texture check (grouping.py says why).

Stage 1 (`_candidates`) compares 16x16 central discs under turn hypotheses, one matrix product
per hypothesis in row blocks. Stage 2 (`_verify`) fits a centred linear map per candidate pair
(inverse-compositional Gauss-Newton, coarse to fine), then scores the texture that the map
brings into line. All work is matrix products, element-wise tensor arithmetic and batched
`grid_sample` calls in torch, in blocks of rows or of pairs; there is no Python loop over pairs.

Measured on the shared Kaggle sample and the demo sets (scripts/measure_grouping.py): texture
scores of true copies mostly 0.8-0.95 (5 % of Kaggle copy pairs under 0.45: their links come
through other members of the family), of distinct synthetic images at most 0.39, of distinct
Kaggle radiographs at most 0.15. Plain band-passed correlation (no edge weights) put distinct
synthetic shafts at up to 0.92, above many true copies. A translation in the fitted map let
distinct images slide into line; copies turned about their centre need none.

Blocks are small on purpose: on the 2-core machine this was tuned on, a fresh tensor over
~0.5 MB cost ~10x its arithmetic in page faults, so row blocks reuse buffers and pair blocks
keep their temporaries under `_BLOCK_FLOATS`.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from boneflow.data.grouping import GroupingSettings

_COARSE_SIDE = 16  # stage-1 resolution
_DISC_RADIUS = 0.30  # of the side: the compared central disc; turned corners stay outside to ~35 degrees
_ASPECTS = (0.7, 1 / 0.7)  # height/width of non-square originals tried in stage 1 (1 is always tried)
_ROW_BLOCK = 128  # stage-1 rows per matrix product
_BLOCK_FLOATS = 1 << 17  # per-block temporaries of 0.5 MB (see the module notes on page faults)
_ALIGN_STEPS = ((16, 2), (32, 2), (64, 1))  # (side, Gauss-Newton steps), coarse to fine
_PRESCREEN = (3, 1.5, 0.3)  # at the next-to-last side: band (px), edge softness, least texture score kept
_TEXTURE = (3, 1.5)  # at full side: band (px) and edge softness (grey levels/px)
_DARK = 6.0  # grey level under which a pixel counts as black (turned corners, padding)
_SEGMENT = 2048  # pairs verified together (bounds the per-image terms held at once)
_ROUNDS = (1, 2, 3, 5)  # candidate ranks verified first; later rounds skip pairs already joined


@functools.lru_cache(maxsize=8)
def _grid(side: int):
    """Normalised (x, y) of the pixel centres of a side x side image, row-major: [side^2, 2]
    (cached: treat as read-only)."""
    import torch

    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _turn_maps(angles_deg, scales):
    """[K, 2, 2] maps from a turned copy's coordinates to its original's: turn by angle, shrink by scale."""
    import torch

    th = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float32))
    sc = torch.as_tensor(scales, dtype=torch.float32)
    cos, sin = th.cos() / sc, th.sin() / sc
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)


def _single_turn_scale(angles):
    """Content scale after a turn with `expand` squashed back to the original square."""
    import torch

    th = torch.deg2rad(torch.as_tensor(angles, dtype=torch.float32))
    return 1.0 / (th.cos().abs() + th.sin().abs())


def _sample(images, maps, pts):
    """images [N, C, S, S], maps [N, 2, 2], pts [P, 2] → values at the mapped points [N, C, P]
    (zero outside the image, as a turned copy's corners are)."""
    import torch.nn.functional as F

    n = len(maps)
    # one matrix product for all pairs' grids: 2-3x faster here than a batched 2x2 product
    grid = (maps.reshape(n * 2, 2) @ pts.T).reshape(n, 2, -1).transpose(1, 2)[:, None]  # [N, 1, P, 2]
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, :, 0]


def _normalise(v):
    v = v - v.mean(dim=-1, keepdim=True)
    return v / (v.norm(dim=-1, keepdim=True) + 1e-6)


def _block_size(side: int, channels: int = 1) -> int:
    return max(8, _BLOCK_FLOATS // (channels * side * side))


def _in_chunks(fn, images):
    """fn(images) -> tuple of tensors, run on chunks of images so its temporaries stay small."""
    import torch

    size = _block_size(images.shape[-1])
    parts = [fn(images[i : i + size]) for i in range(0, len(images), size)]
    return tuple(torch.cat(p) for p in zip(*parts))


# --- stage 1: candidates ---------------------------------------------------------------------


def _stage1_angles(settings: GroupingSettings):
    import torch

    step, top = settings.candidate_step, settings.rotation_max_angle
    return torch.arange(-top, top + step / 2, step)


def _wide_turn_maps(angles_deg, aspect: float):
    """[K, 2, 2] like _turn_maps, for an original of height/width `aspect` squashed to a square
    (its thumbnail) whose turned copy, on an expanded canvas, was squashed to a square too."""
    import torch

    th = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float32))
    cos, sin = th.cos(), th.sin()
    canvas_w, canvas_h = cos.abs() + aspect * sin.abs(), sin.abs() + aspect * cos.abs()
    return torch.stack(
        [
            torch.stack([cos * canvas_w, -sin * canvas_h], -1),
            torch.stack([sin * canvas_w / aspect, cos * canvas_h / aspect], -1),
        ],
        1,
    )


def _has_black_corners(fine):
    """[n] bool: all four 3x3 corner patches black, as on a copy turned on an expanded canvas."""
    import torch

    c = torch.stack([fine[:, 0, :3, :3], fine[:, 0, :3, -3:], fine[:, 0, -3:, :3], fine[:, 0, -3:, -3:]], 1)
    return (c.mean(dim=(2, 3)) < _DARK).all(dim=1)


def _stage1_vectors(coarse, cornered, settings: GroupingSettings):
    """Normalised central discs of each image as it is, [n, P]; as it would look after each
    square-turn hypothesis, [A, n, P]; after each non-square-original hypothesis, only for
    images without black corners (an original), [E, n_plain, P]; every hypothesis's map (square
    first) [A + E, 2, 2]; and the indices of those plain images."""
    import torch

    n = len(coarse)
    disc = _grid(coarse.shape[-1]).norm(dim=1) <= 2 * _DISC_RADIUS
    pts = _grid(coarse.shape[-1])[disc]
    angles = _stage1_angles(settings)
    square = _turn_maps(angles, _single_turn_scale(angles))
    wide_angles = angles[angles.abs() > 0]  # a turn by 0 leaves the original's shape
    wide = torch.cat([_wide_turn_maps(wide_angles, r) for r in _ASPECTS]) if _ASPECTS else torch.zeros(0, 2, 2)
    plain = torch.nonzero(~cornered).reshape(-1) if len(wide) else torch.zeros(0, dtype=torch.long)

    def warp(images, maps):
        if not (len(maps) and len(images)):
            return torch.zeros(len(maps), len(images), len(pts))
        return torch.stack([_normalise(_sample(images, m.expand(len(images), 2, 2), pts)[:, 0]) for m in maps])

    still = _normalise(coarse.reshape(n, -1)[:, disc])
    return still, warp(coarse, square), warp(coarse[plain], wide), torch.cat([square, wide]), plain


def _best_over_hypotheses(blk, rows, warped, wide, plain, cornered, bufs):
    """Best stage-1 correlation of each row image with every image over all hypotheses, in
    place in the buffers (which hypothesis won is found later, for the candidates only)."""
    import torch

    m = len(rows)
    b_val, s_val = (x[:m] for x in bufs)
    torch.mm(blk, warped[0].T, out=b_val)
    for i in range(1, len(warped)):
        torch.mm(blk, warped[i].T, out=s_val)
        torch.maximum(b_val, s_val, out=b_val)
    local = torch.nonzero(cornered[rows]).reshape(-1)  # turned copies vs non-square originals
    if len(wide) and len(local) and len(plain):
        sub = torch.stack([blk[local] @ w.T for w in wide]).amax(dim=0)  # [m_c, n_plain]
        b_val[local[:, None], plain[None, :]] = torch.maximum(b_val[local][:, plain], sub)
    b_val[torch.arange(m), rows] = -2.0  # never a copy of itself
    return b_val


def _winning_maps(still, warped, wide, plain, cornered, hyp_maps, b, a):
    """The stage-1 hypothesis (as a map) that gave each candidate pair its score."""
    import torch

    slot = torch.full((len(cornered),), -1, dtype=torch.long)
    slot[plain] = torch.arange(len(plain))
    size = max(64, _BLOCK_FLOATS // ((len(warped) + len(wide)) * still.shape[1]))  # pairs per block
    best = []
    for i in range(0, len(b), size):
        bb, aa = b[i : i + size], a[i : i + size]
        scores = torch.einsum("np,hnp->hn", still[bb], warped[:, aa])  # [A, N]
        if len(wide):
            ok = cornered[bb] & (slot[aa] >= 0)
            extra = torch.full((len(wide), len(bb)), -2.0)
            extra[:, ok] = torch.einsum("np,hnp->hn", still[bb[ok]], wide[:, slot[aa[ok]]])
            scores = torch.cat([scores, extra])
        best.append(scores.argmax(dim=0))
    return hyp_maps[torch.cat(best)] if best else hyp_maps[:0]


def _candidates(fine, settings: GroupingSettings):
    """Stage 1 → (b, a, map, rank): image b may be image a turned, `map` [N, 2, 2] the guess
    from b's coordinates to a's; rank is the pair's place in b's row or a's column of best
    matches. Top-k per row (b) and per column (a), so an original finds its turned copies and a
    copy its original. Works in row blocks on reused buffers (fresh large tensors cost more in
    page faults than the arithmetic)."""
    import torch
    import torch.nn.functional as F

    cornered = _has_black_corners(fine)
    coarse = F.adaptive_avg_pool2d(fine, _COARSE_SIDE)
    still, warped, wide, hyp_maps, plain = _stage1_vectors(coarse, cornered, settings)
    n, k = len(still), min(settings.candidates, len(still) - 1)
    rows_max = min(_ROW_BLOCK, n)
    bufs = (torch.empty(rows_max, n), torch.empty(rows_max, n))
    merge_val, merge_idx = torch.full((k + rows_max, n), -2.0), torch.zeros((k + rows_max, n), dtype=torch.long)
    found, ranks = [], torch.arange(k)
    for start in range(0, n, rows_max):
        rows = torch.arange(start, min(start + rows_max, n))
        m = len(rows)
        b_val = _best_over_hypotheses(still[start : start + m], rows, warped, wide, plain, cornered, bufs)
        top = b_val.topk(k, dim=1)
        found.append((rows.repeat_interleave(k), top.indices.reshape(-1), top.values.reshape(-1), ranks.repeat(m)))
        merge_val[k : k + m], merge_idx[k : k + m] = b_val, rows[:, None]
        col = merge_val[: k + m].topk(k, dim=0)  # running top-k per column, kept in the first k rows
        merge_idx[:k] = merge_idx[: k + m].gather(0, col.indices)
        merge_val[:k] = col.values
    found.append(
        (merge_idx[:k].reshape(-1), torch.arange(n).repeat(k), merge_val[:k].reshape(-1), ranks.repeat_interleave(n))
    )
    b, a, val, rank = (torch.cat(parts) for parts in zip(*found))
    keep = val >= settings.candidate_min_corr
    b, a, val, rank = _unique_pairs(b[keep], a[keep], rank[keep], val[keep], n)
    return b, a, _winning_maps(still, warped, wide, plain, cornered, hyp_maps, b, a), rank


def _unique_pairs(b, a, rank, val, n: int):
    """Each unordered pair once: its best rank, in the orientation that scored best in stage 1."""
    import torch

    key = (torch.minimum(a, b) * n + torch.maximum(a, b)).numpy()
    _, slot_np = np.unique(key, return_inverse=True)
    slot = torch.from_numpy(slot_np.reshape(-1))
    best_rank = torch.full((int(slot.max()) + 1 if len(slot) else 0,), len(rank), dtype=torch.long)
    best_rank = best_rank.scatter_reduce(0, slot, rank, reduce="amin")
    order = torch.argsort(val, descending=True)
    _, first_np = np.unique(key[order.numpy()], return_index=True)  # same slot order as above
    first = order[torch.from_numpy(first_np)]
    return b[first], a[first], val[first], best_rank


# --- stage 2: alignment ----------------------------------------------------------------------


def _gradients(images):
    """[n, 1, S, S] → [n, 2, S*S]: d/dx, d/dy in normalised coordinates (central differences)."""
    import torch
    import torch.nn.functional as F

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
    import torch

    n, side = len(images), images.shape[-1]
    pts = _grid(side)
    g = _gradients(images)  # [n, 2, P]
    gg = torch.stack([g[:, 0] * g[:, 0], g[:, 0] * g[:, 1], g[:, 1] * g[:, 1]], 1)  # [n, 3, P]
    pp = torch.stack([pts[:, 0] * pts[:, 0], pts[:, 0] * pts[:, 1], pts[:, 1] * pts[:, 1]], 1)  # [P, 3]
    s = (gg.reshape(-1, side * side) @ pp).reshape(n, 3, 3)  # sum over pixels of g_r g_s p_c p_d
    hessian = s.reshape(n, 9)[:, _HESSIAN_INDEX].reshape(n, 4, 4)
    hinv = torch.linalg.inv(hessian + 1e-3 * torch.eye(4))
    flat = images.reshape(n, -1)
    return flat, flat.mean(1, keepdim=True), flat.std(1, keepdim=True), g, hinv


def _inverse_2x2(m):
    import torch

    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], 1) / det[:, None, None]


def _align_level(images, terms, b, a, maps, steps: int):
    """Refine maps [N, 2, 2] (b's coordinates → a's) so a, sampled there, matches b (`b` indexes
    the still images' `terms`, `a` the images). Gain and offset are matched once, at the first
    step, so only the geometry is fitted."""
    import torch

    flat, mean, std, grads, hinv = terms
    side = images.shape[-1]
    pts = _grid(side)
    src, t, t_grads, t_hinv = images[a], flat[b], grads[b], hinv[b]
    start, gain, offset = maps, None, None
    for _ in range(steps):
        v = _sample(src, maps, pts)[:, 0]
        if gain is None:
            v_mean = v.mean(1, keepdim=True)
            gain = std[b] / v.std(1, keepdim=True).clamp(min=1e-3)
            offset = mean[b] - gain * v_mean
        err = gain * v + offset - t
        g = ((t_grads * err[:, None]).reshape(-1, side * side) @ pts).reshape(-1, 4, 1)
        delta = (t_hinv @ g).reshape(-1, 2, 2)
        maps = maps @ _inverse_2x2(torch.eye(2) + delta)
    lost = ~maps.reshape(-1, 4).isfinite().all(1)  # a degenerate pair (flat image): keep its guess
    return torch.where(lost[:, None, None], start, maps)


def _pyramid(fine):
    """[(images, Gauss-Newton steps)] per alignment level, coarse to fine."""
    import torch.nn.functional as F

    return [
        (F.adaptive_avg_pool2d(fine, side) if side != fine.shape[-1] else fine, steps) for side, steps in _ALIGN_STEPS
    ]


def _align(levels, b, a, maps):
    """Refine maps [N, 2, 2] through the given pyramid levels, coarse to fine, in pair blocks;
    template terms are computed for the still images these pairs use, once per level."""
    import torch

    for images, steps in levels:
        if len(b) == 0:
            break
        used, local = torch.unique(b, return_inverse=True)
        terms = _in_chunks(_template_terms, images[used])
        size = _block_size(images.shape[-1])
        maps = torch.cat(
            [
                _align_level(images, terms, local[i : i + size], a[i : i + size], maps[i : i + size], steps)
                for i in range(0, len(b), size)
            ]
        )
    return maps


# --- stage 2: texture check ------------------------------------------------------------------


def _local_mean(images, size: int, mode: str):
    """Box mean over size x size, same shape out; summed from shifted slices (twice as fast as
    avg_pool2d on CPU)."""
    import torch.nn.functional as F

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
    import torch

    if len(b) == 0:
        return torch.zeros(0)
    used, local = torch.unique(b, return_inverse=True)
    flat, band_b, edges_b = _in_chunks(lambda chunk: _texture_terms(chunk, band), images[used])
    side = images.shape[-1]
    pts = _grid(side)
    out, size = [], _block_size(side, 2)
    for start in range(0, len(b), size):
        sl = slice(start, start + size)
        bb = local[sl]
        mapped = _sample(images[a[sl]], maps[sl], pts).reshape(-1, 1, side, side)
        lit = (mapped.reshape(len(bb), -1) > _DARK) | (flat[bb] > _DARK)
        edges = torch.maximum(edges_b[bb], _edge_strength(mapped, "replicate"))
        mapped_band = (mapped - _local_mean(mapped, band, "replicate")).reshape(len(bb), -1)
        out.append(_weighted_corr(mapped_band, band_b[bb], lit / (1.0 + (edges / softness) ** 2)))
    return torch.cat(out) if out else torch.zeros(0)


def _weighted_corr(x, y, w):
    total = w.sum(1, keepdim=True).clamp(min=1e-6)
    x = x - (w * x).sum(1, keepdim=True) / total
    y = y - (w * y).sum(1, keepdim=True) / total
    return (w * x * y).sum(1) / ((w * x * x).sum(1) * (w * y * y).sum(1)).sqrt().clamp(min=1e-6)


# --- stage 2: rounds -------------------------------------------------------------------------


def _components(labels, b, a):
    """Component labels (smallest member) after joining the pairs (b, a): hook and jump until
    nothing changes (no loop over pairs)."""
    import torch

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
    import torch

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
    import torch

    levels = _pyramid(fine)
    labels = torch.arange(len(fine))
    bounds = (0, *_ROUNDS, len(rank) + 1)
    found_b, found_a = [], []
    for lo, hi in itertools.pairwise(bounds):
        sel = (rank >= lo) & (rank < hi) & (labels[b] != labels[a])
        hb, ha = _verify_pairs(levels, b[sel], a[sel], maps[sel], min_corr)
        labels = _components(labels, hb, ha)
        found_b.append(hb)
        found_a.append(ha)
    return torch.cat(found_b), torch.cat(found_a)


def rotated_links(thumbs: np.ndarray, *, settings: GroupingSettings = GroupingSettings()) -> list[tuple[int, int]]:
    """(i, j) pairs of `thumbs` (uint8 [n, 64, 64]) where one is a small-angle turned copy of the
    other; enough of them to join every such copy to its group, not every pair of the group."""
    import torch

    if len(thumbs) < 2:
        return []
    fine = torch.from_numpy(np.ascontiguousarray(thumbs, dtype=np.float32))[:, None]
    b, a, maps, rank = _candidates(fine, settings)
    if len(b) == 0:
        return []
    hb, ha = _verify(fine, b, a, maps, rank, settings.rotation_min_corr)
    return list(zip(hb.tolist(), ha.tolist()))
