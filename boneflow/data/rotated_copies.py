"""Small-angle rotated copies: two-stage search on 64x64 thumbnails (see grouping.py for why).

All work is matrix products and batched `grid_sample` calls in torch; there is no Python loop
over pairs. Stage 1 runs in row blocks so memory stays O(block x n), not O(n^2).
"""

from __future__ import annotations

import numpy as np

from boneflow.data.grouping import GroupingSettings

_DISC_COARSE = 0.30  # radius (fraction of the side) of the compared disc at 32x32
_DISC_FINE = 0.35  # at 64x64; corners blackened by a turn stay outside up to ~35 degrees
_BAND_KERNEL = 9  # local-mean window (px at 64x64) removed before verification
_FINE_ANGLES = (-1.5, 0.0, 1.5)  # degrees around the candidate's angle
_FINE_SCALES = (0.8, 0.87, 0.94, 1.0)  # x the single-turn scale: chained turns shrink more
_ROW_BLOCK = 512
_PAIR_BLOCK = 4096


def _disc_points(side: int, radius: float):
    """Normalised (x, y, 1) coordinates of the pixel centres inside the central disc, and the mask."""
    import torch

    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1  # -1..1, pixel centres
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    mask = (xx**2 + yy**2).sqrt().reshape(-1) <= 2 * radius
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.ones(side * side)], dim=1)[mask]
    return pts, mask


def _affines(angles_deg, scales):
    """[K, 2, 3] maps from output to input coordinates of 'turn by angle, then scale'."""
    import torch

    th = torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float32))
    sc = torch.as_tensor(scales, dtype=torch.float32)
    cos, sin = th.cos() / sc, th.sin() / sc
    zero = torch.zeros_like(cos)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)


def _single_turn_scale(angles):
    import torch

    th = torch.deg2rad(torch.as_tensor(angles, dtype=torch.float32))
    return 1.0 / (th.cos().abs() + th.sin().abs())


def _sample(images, affines, pts):
    """images [N, 1, S, S], affines [N, 2, 3], pts [P, 3] → values at the warped points [N, P]."""
    import torch
    import torch.nn.functional as F

    grid = torch.einsum("pk,nck->npc", pts, affines)[:, None]  # [N, 1, P, 2]
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0, 0]


def _normalise(v):
    v = v - v.mean(dim=-1, keepdim=True)
    return v / (v.norm(dim=-1, keepdim=True) + 1e-6)


def _candidates(coarse, settings: GroupingSettings):
    """Stage 1 → (b, a, angle) of candidate pairs: image b may be image a turned by angle."""
    import torch

    n = len(coarse)
    pts, mask = _disc_points(coarse.shape[-1], _DISC_COARSE)
    still = _normalise(coarse.reshape(n, -1)[:, mask])  # [n, P]
    step = settings.candidate_step
    angles = torch.arange(-settings.rotation_max_angle, settings.rotation_max_angle + step / 2, step)
    warped = []  # per angle [n, P]: every image as it would look after that turn
    for affine in _affines(angles, _single_turn_scale(angles)):
        warped.append(_normalise(_sample(coarse, affine.expand(n, 2, 3), pts)))
    k = min(settings.candidates, n - 1)
    rows_b, rows_a, rows_ang = [], [], []
    col_val = torch.full((k, n), -2.0)
    col_idx = torch.zeros((k, n), dtype=torch.long)
    col_ang = torch.zeros((k, n))
    for start in range(0, n, _ROW_BLOCK):
        block = still[start : start + _ROW_BLOCK]
        best = torch.full((len(block), n), -2.0)
        best_ang = torch.zeros((len(block), n))
        for angle, w in zip(angles.tolist(), warped):
            sim = block @ w.T  # [blk, n]: block image vs every image turned by `angle`
            better = sim > best
            best = torch.where(better, sim, best)
            best_ang = torch.where(better, torch.tensor(angle), best_ang)
        rows = torch.arange(start, start + len(block))
        best[torch.arange(len(block)), rows] = -2.0  # never a copy of itself
        top = best.topk(k, dim=1)
        rows_b.append(rows.repeat_interleave(k))
        rows_a.append(top.indices.reshape(-1))
        rows_ang.append(best_ang.gather(1, top.indices).reshape(-1))
        keep_rows = top.values.reshape(-1) >= settings.candidate_min_corr
        rows_b[-1], rows_a[-1], rows_ang[-1] = rows_b[-1][keep_rows], rows_a[-1][keep_rows], rows_ang[-1][keep_rows]
        # running top-k per column (image a), so an original finds its turned copies too
        merged_val = torch.cat([col_val, best], 0)
        merged_idx = torch.cat([col_idx, rows[:, None].expand(-1, n)], 0)
        merged_ang = torch.cat([col_ang, best_ang], 0)
        top_c = merged_val.topk(k, dim=0)
        col_val, col_idx = top_c.values, merged_idx.gather(0, top_c.indices)
        col_ang = merged_ang.gather(0, top_c.indices)
    keep = col_val.reshape(-1) >= settings.candidate_min_corr
    cols_a = torch.arange(n).repeat(k)
    b = torch.cat(rows_b + [col_idx.reshape(-1)[keep]])
    a = torch.cat(rows_a + [cols_a[keep]])
    ang = torch.cat(rows_ang + [col_ang.reshape(-1)[keep]])
    _, first = np.unique((b * n + a).numpy(), return_index=True)
    return b[first], a[first], ang[first]


def _band_pass(images):
    import torch.nn.functional as F

    pad = _BAND_KERNEL // 2
    local_mean = F.avg_pool2d(F.pad(images, (pad,) * 4, mode="replicate"), _BAND_KERNEL, stride=1)
    return images - local_mean


def _verify(fine, b, a, ang):
    """Stage 2: best band-passed correlation of image b with image a over angle/scale near `ang`."""
    import torch

    pts, mask = _disc_points(fine.shape[-1], _DISC_FINE)
    band = _band_pass(fine)
    target = _normalise(band.reshape(len(band), -1)[:, mask])
    score = torch.full((len(b),), -2.0)
    for d_angle in _FINE_ANGLES:
        for factor in _FINE_SCALES:
            for start in range(0, len(b), _PAIR_BLOCK):
                sl = slice(start, start + _PAIR_BLOCK)
                angles = ang[sl] + d_angle
                affines = _affines(angles, _single_turn_scale(angles) * factor)
                v = _normalise(_sample(band[a[sl]], affines, pts))
                score[sl] = torch.maximum(score[sl], (v * target[b[sl]]).sum(dim=1))
    return score


def rotated_links(thumbs: np.ndarray, *, settings: GroupingSettings = GroupingSettings()) -> list[tuple[int, int]]:
    """(i, j) pairs of `thumbs` (uint8 [n, 64, 64]) where one is a small-angle turned copy of the other."""
    import torch
    import torch.nn.functional as F

    if len(thumbs) < 2:
        return []
    fine = torch.from_numpy(np.ascontiguousarray(thumbs, dtype=np.float32))[:, None]
    coarse = F.avg_pool2d(fine, 2)
    b, a, ang = _candidates(coarse, settings)
    if len(b) == 0:
        return []
    score = _verify(fine, b, a, ang)
    hit = score >= settings.rotation_min_corr
    return [(int(x), int(y)) for x, y in zip(b[hit].tolist(), a[hit].tolist())]
