"""Small-angle rotated copies, stage 1: candidate pairs, and the warping helpers both stages use
(rotated_copies.py verifies the candidates; the search: README, "Honest evaluation: duplicate
groups and the split policy", step 1).

`candidates` also tries each original (no black corners) as a non-square original squashed to
a square (`_ASPECTS`), and keeps each image's best matches, by row and by column, with the
hypothesis (a 2x2 map) that scored them. Blocks are small on purpose: on the 2-core machine
this was tuned on, a fresh tensor over ~0.5 MB cost ~10x its arithmetic in page faults, so row
blocks reuse buffers and pair blocks keep their temporaries under `_BLOCK_FLOATS`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from boneflow.settings import GroupingSettings

_COARSE_SIDE = 16  # stage-1 resolution
_DISC_RADIUS = 0.30  # of the side: the compared central disc; turned corners stay outside to ~35 degrees
_ASPECTS = (0.7, 1 / 0.7)  # height/width of non-square originals tried in stage 1 (1 is always tried)
_ROW_BLOCK = 128  # stage-1 rows per matrix product
_BLOCK_FLOATS = 1 << 17  # per-block temporaries of 0.5 MB (see the module notes on page faults)
DARK = 6.0  # grey level under which a pixel counts as black (turned corners, padding)


@functools.lru_cache(maxsize=8)
def grid(side: int):
    """Normalised (x, y) of the pixel centres of a side x side image, row-major: [side^2, 2]
    (cached: treat as read-only)."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def _turn_maps(angles_deg):
    """[K, 2, 2] maps from a turned copy's coordinates to its original's: a square turned with
    `expand` and squashed back to a square, so turned by the angle, content shrunk by
    1/(|cos| + |sin|)."""
    th = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float32))
    sc = 1.0 / (th.cos().abs() + th.sin().abs())
    cos, sin = th.cos() / sc, th.sin() / sc
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)


def sample(images, maps, pts):
    """images [N, C, S, S], maps [N, 2, 2], pts [P, 2] → values at the mapped points [N, C, P]
    (zero outside the image, as a turned copy's corners are)."""
    n = len(maps)
    # one matrix product for all pairs' grids: 2-3x faster here than a batched 2x2 product
    grid = (maps.reshape(n * 2, 2) @ pts.T).reshape(n, 2, -1).transpose(1, 2)[:, None]  # [N, 1, P, 2]
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, :, 0]


def inverse_2x2(m):
    """Inverse of each of the maps [N, 2, 2]."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], 1) / det[:, None, None]


def _normalise(v):
    v = v - v.mean(dim=-1, keepdim=True)
    return v / (v.norm(dim=-1, keepdim=True) + 1e-6)


def block_size(side: int, channels: int = 1) -> int:
    return max(8, _BLOCK_FLOATS // (channels * side * side))


def in_chunks(fn, images):
    """fn(images) -> tuple of tensors, run on chunks of images so its temporaries stay small."""
    size = block_size(images.shape[-1])
    parts = [fn(images[i : i + size]) for i in range(0, len(images), size)]
    return tuple(torch.cat(p) for p in zip(*parts))


def _wide_turn_maps(angles_deg, aspect: float):
    """[K, 2, 2] like _turn_maps, for an original of height/width `aspect` squashed to a square
    (its thumbnail) whose turned copy, on an expanded canvas, was squashed to a square too."""
    th = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float32))
    cos, sin = th.cos(), th.sin()
    canvas_w, canvas_h = cos.abs() + aspect * sin.abs(), sin.abs() + aspect * cos.abs()
    top = torch.stack([cos * canvas_w, -sin * canvas_h], -1)
    bottom = torch.stack([sin * canvas_w / aspect, cos * canvas_h / aspect], -1)
    return torch.stack([top, bottom], 1)


def _has_black_corners(fine):
    """[n] bool: all four 3x3 corner patches black, as on a copy turned on an expanded canvas."""
    c = torch.stack([fine[:, 0, :3, :3], fine[:, 0, :3, -3:], fine[:, 0, -3:, :3], fine[:, 0, -3:, -3:]], 1)
    return (c.mean(dim=(2, 3)) < DARK).all(dim=1)


def _stage1_vectors(coarse, cornered, settings: GroupingSettings):
    """Normalised central discs of each image as it is, [n, P]; as it would look after each
    square-turn hypothesis, [A, n, P]; after each non-square-original hypothesis, only for
    images without black corners (an original), [E, n_plain, P]; every hypothesis's map (square
    first) [A + E, 2, 2]; and the indices of those plain images."""
    n = len(coarse)
    disc = grid(coarse.shape[-1]).norm(dim=1) <= 2 * _DISC_RADIUS
    pts = grid(coarse.shape[-1])[disc]
    step, top = settings.candidate_step, settings.rotation_max_angle
    angles = torch.arange(-top, top + step / 2, step)
    square = _turn_maps(angles)
    wide_angles = angles[angles.abs() > 0]  # a turn by 0 leaves the original's shape
    wide = torch.cat([_wide_turn_maps(wide_angles, r) for r in _ASPECTS])
    plain = torch.nonzero(~cornered).reshape(-1) if len(wide) else torch.zeros(0, dtype=torch.long)

    def warp(images, maps):
        if not (len(maps) and len(images)):
            return torch.zeros(len(maps), len(images), len(pts))
        return torch.stack([_normalise(sample(images, m.expand(len(images), 2, 2), pts)[:, 0]) for m in maps])

    still = _normalise(coarse.reshape(n, -1)[:, disc])
    return still, warp(coarse, square), warp(coarse[plain], wide), torch.cat([square, wide]), plain


def _best_over_hypotheses(blk, rows, warped, wide, plain, cornered, bufs):
    """Best stage-1 correlation of each row image with every image over all hypotheses, in
    place in the buffers (which hypothesis won is found later, for the candidates only)."""
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


def candidates(fine, settings: GroupingSettings):
    """Stage 1 → (b, a, map, rank): image b may be image a turned, `map` [N, 2, 2] the guess
    from b's coordinates to a's; rank is the pair's place in b's row or a's column of best
    matches. Top-k per row (b) and per column (a), so an original finds its turned copies and a
    copy its original."""
    cornered = _has_black_corners(fine)
    coarse = F.adaptive_avg_pool2d(fine, _COARSE_SIDE)
    still, warped, wide, hyp_maps, plain = _stage1_vectors(coarse, cornered, settings)
    n, k = len(still), min(settings.candidates, len(still) - 1)
    rows_max = min(_ROW_BLOCK, n)
    bufs = (torch.empty(rows_max, n), torch.empty(rows_max, n))
    blocks = (
        (rows, _best_over_hypotheses(still[rows], rows, warped, wide, plain, cornered, bufs))
        for rows in torch.arange(n).split(rows_max)
    )
    b, a, val, rank = top_pairs(blocks, n, k, rows_max)
    keep = val >= settings.candidate_min_corr
    b, a, val, rank = _unique_pairs(b[keep], a[keep], rank[keep], val[keep], n)
    return b, a, _winning_maps(still, warped, wide, plain, cornered, hyp_maps, b, a), rank


def top_pairs(blocks, v: int, k: int, rows_max: int):
    """(row, column, score, rank) of each row's k best columns and each column's k best rows;
    `blocks` yields (row indices [m <= rows_max], scores [m, v]) in row order. The running
    column top-k lives in the first k rows of reused buffers."""
    merge_val, merge_idx = torch.full((k + rows_max, v), -2.0), torch.zeros((k + rows_max, v), dtype=torch.long)
    found, ranks = [], torch.arange(k)
    for rows, scores in blocks:
        m = len(rows)
        top = scores.topk(k, dim=1)
        found.append((rows.repeat_interleave(k), top.indices.reshape(-1), top.values.reshape(-1), ranks.repeat(m)))
        merge_val[k : k + m], merge_idx[k : k + m] = scores, rows[:, None]
        col = merge_val[: k + m].topk(k, dim=0)
        merge_idx[:k] = merge_idx[: k + m].gather(0, col.indices)
        merge_val[:k] = col.values
    found.append(
        (merge_idx[:k].reshape(-1), torch.arange(v).repeat(k), merge_val[:k].reshape(-1), ranks.repeat_interleave(v))
    )
    return tuple(torch.cat(parts) for parts in zip(*found))


def _unique_pairs(b, a, rank, val, n: int):
    """Each unordered pair once: its best rank, in the orientation that scored best in stage 1."""
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    keys, slot = torch.unique(key, return_inverse=True)  # sorted, as np.unique below
    best_rank = torch.full((len(keys),), len(rank), dtype=torch.long).scatter_reduce(0, slot, rank, reduce="amin")
    order = torch.argsort(val, descending=True)
    _, first_np = np.unique(key[order].numpy(), return_index=True)  # first = best-scoring orientation
    first = order[torch.from_numpy(first_np)]
    return b[first], a[first], val[first], best_rank
